//! An example of kernel tests written as ordinary `cargo test`s: each test in `tests/` boots
//! a kernel with `vmlane::Run`, runs a command inside, and asserts on its exit status, output,
//! JSON-line events and the kernel's console. `VMLANE_KERNEL` picks the kernel.
