//! Hands out a suite's cases in order and their turns to start their commands: at most `jobs`
//! commands run at once, while one more case may get ready ahead (restore its saved guest and
//! mount its root) so its command starts the moment a job ends.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use vmlane_backend::Turn;

/// Cases taken in index order; turns given in the same order as jobs free up.
pub struct Turns {
    state: Mutex<State>,
}

struct State {
    next: usize,
    cases: usize,
    free: usize,
    waiting: VecDeque<Arc<Turn>>,
    stopped: bool,
}

impl Turns {
    /// `cases` cases, `jobs` of them started at once.
    pub fn new(cases: usize, jobs: usize) -> Turns {
        Turns {
            state: Mutex::new(State {
                next: 0,
                cases,
                free: jobs.max(1),
                waiting: VecDeque::new(),
                stopped: false,
            }),
        }
    }

    /// The next case and its turn, given at once if a job is free; `None` when every case
    /// was taken or the suite stopped.
    pub fn take(&self) -> std::io::Result<Option<(usize, Arc<Turn>)>> {
        let mut state = self.state.lock().expect("turns lock");
        if state.stopped || state.next >= state.cases {
            return Ok(None);
        }
        let turn = Arc::new(Turn::new()?);
        let index = state.next;
        state.next += 1;
        state.waiting.push_back(turn.clone());
        state.give();
        Ok(Some((index, turn)))
    }

    /// A case ended: its job goes to the next case waiting. One that ended before its turn
    /// came (it failed while getting ready) leaves the queue instead.
    pub fn done(&self, turn: &Arc<Turn>) {
        let mut state = self.state.lock().expect("turns lock");
        let before = state.waiting.len();
        state.waiting.retain(|waiting| !Arc::ptr_eq(waiting, turn));
        if state.waiting.len() == before {
            state.free += 1;
        }
        state.give();
    }

    /// No further case starts: the ones waiting for a turn end without their command.
    pub fn stop(&self) {
        let mut state = self.state.lock().expect("turns lock");
        state.stopped = true;
        for turn in state.waiting.drain(..) {
            turn.cancel();
        }
    }
}

impl State {
    fn give(&mut self) {
        while self.free > 0 {
            let Some(turn) = self.waiting.pop_front() else {
                return;
            };
            self.free -= 1;
            turn.open();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmlane_backend::TurnWait;

    fn given(turn: &Turn) -> bool {
        turn.outcome() == Some(TurnWait::Go)
    }

    #[test]
    fn one_job_gives_turns_one_at_a_time_in_case_order() {
        let turns = Turns::new(3, 1);
        let (first, a) = turns.take().unwrap().unwrap();
        let (second, b) = turns.take().unwrap().unwrap();
        assert_eq!((first, second), (0, 1));
        assert!(given(&a), "a free job starts the first case at once");
        assert!(!given(&b), "the second readies but waits");
        turns.done(&a);
        assert!(given(&b));
        let (third, c) = turns.take().unwrap().unwrap();
        assert_eq!(third, 2);
        assert!(!given(&c));
        turns.done(&b);
        assert!(given(&c));
        assert!(turns.take().unwrap().is_none(), "three cases only");
    }

    #[test]
    fn two_jobs_start_two_cases_at_once() {
        let turns = Turns::new(4, 2);
        let taken: Vec<_> = (0..3).map(|_| turns.take().unwrap().unwrap().1).collect();
        assert_eq!(
            taken.iter().map(|t| given(t)).collect::<Vec<_>>(),
            [true, true, false]
        );
        turns.done(&taken[0]);
        assert!(given(&taken[2]));
    }

    #[test]
    fn a_case_that_ends_before_its_turn_frees_no_job() {
        let turns = Turns::new(4, 1);
        let (_, running) = turns.take().unwrap().unwrap();
        let (_, failed) = turns.take().unwrap().unwrap();
        turns.done(&failed);
        assert!(!given(&failed));
        let (_, next) = turns.take().unwrap().unwrap();
        assert!(!given(&next), "the one job is still taken");
        turns.done(&running);
        assert!(given(&next));
    }

    #[test]
    fn a_stop_cancels_the_cases_waiting_and_takes_no_more() {
        let turns = Turns::new(5, 1);
        let (_, running) = turns.take().unwrap().unwrap();
        let (_, waiting) = turns.take().unwrap().unwrap();
        turns.stop();
        assert!(given(&running), "a running case is not touched");
        assert!(waiting.is_cancelled());
        assert!(matches!(waiting.outcome(), Some(TurnWait::Stop(_))));
        assert!(turns.take().unwrap().is_none());
    }
}
