/*
 * Parser for /vmlane/run, the file the host writes into the guest image.
 *
 * Kept free of system calls and libc so the same code can be compiled for
 * the host and tested there (see tests/runfile_parser.rs). The file is
 * untrusted input: every string must end inside the buffer, counts are
 * bounded, and nothing may follow the last environment string.
 *
 * Layout, every item a NUL-terminated string:
 *   "vmlane-run 2", token, cwd, share tag ("" = none),
 *   channel device ("" = none: the result goes on the console),
 *   argc (decimal), argv[0..argc], envc (decimal), env[0..envc]
 * argc may be 0 only with a channel, over which the host sends the
 * command instead (channel.h).
 *
 * The limits here must match the constants in src/lib.rs.
 */
#ifndef VMLANE_RUNFILE_H
#define VMLANE_RUNFILE_H

#define RUN_MAGIC "vmlane-run 2"
/* Largest run file accepted, in bytes. */
#define RUN_MAX_BYTES (1UL << 20)
/* Most argv and most env strings accepted (each, not counting the NULL). */
#define RUN_MAX_STRINGS 65536UL
/* Longest token accepted; it is echoed in every marker line. */
#define RUN_MAX_TOKEN 128UL

struct run {
	const char *token;
	const char *cwd;
	const char *share; /* NULL when there is no share */
	const char *channel; /* NULL: report on the console */
	unsigned long argc;
	unsigned long envc;
};

/* Why parsing stopped; also tells init whether `token` is usable. */
enum run_error {
	RUN_OK = 0,
	RUN_TRUNCATED,   /* a string does not end inside the file */
	RUN_BAD_MAGIC,
	RUN_BAD_TOKEN,
	RUN_BAD_COUNT,   /* a count is not plain decimal or is out of range */
	RUN_EMPTY_ARGV,  /* argc 0 without a channel */
	RUN_TRAILING,    /* bytes after the last environment string */
};

/* Takes the string starting at *pos; fails when its NUL is not in buf. */
static int
run_next(const char *buf, unsigned long len, unsigned long *pos,
    const char **out)
{
	unsigned long i;

	for (i = *pos; i < len; i++) {
		if (buf[i] == '\0') {
			*out = buf + *pos;
			*pos = i + 1;
			return 1;
		}
	}
	return 0;
}

static int
run_streq(const char *a, const char *b)
{
	while (*a != '\0' && *a == *b) {
		a++;
		b++;
	}
	return *a == *b;
}

/*
 * Tokens are echoed into marker lines the host parses, so only printable,
 * non-space ASCII other than ':' is allowed.
 */
static int
run_token_ok(const char *s)
{
	unsigned long n;

	for (n = 0; s[n] != '\0'; n++) {
		unsigned char c = (unsigned char)s[n];
		if (n >= RUN_MAX_TOKEN || c <= ' ' || c >= 0x7f || c == ':')
			return 0;
	}
	return n > 0;
}

/* Plain decimal, no sign, no leading zeros, at most `max`. */
static int
run_count(const char *s, unsigned long max, unsigned long *out)
{
	unsigned long v = 0, n;

	for (n = 0; s[n] != '\0'; n++) {
		if (s[n] < '0' || s[n] > '9' || n >= 7)
			return 0;
		v = v * 10 + (unsigned long)(s[n] - '0');
	}
	if (n == 0 || (n > 1 && s[0] == '0') || v > max)
		return 0;
	*out = v;
	return 1;
}

/*
 * Parses buf[0..len). argv and env must each have room for
 * RUN_MAX_STRINGS + 1 pointers; both end up NULL-terminated. On failure
 * r->token is set (non-NULL) as soon as a valid token was seen.
 */
static enum run_error
run_parse(const char *buf, unsigned long len, struct run *r, char **argv,
    char **env)
{
	unsigned long pos = 0, i;
	const char *s;

	r->token = 0;
	r->cwd = 0;
	r->share = 0;
	r->channel = 0;
	r->argc = 0;
	r->envc = 0;
	argv[0] = 0;
	env[0] = 0;

	if (!run_next(buf, len, &pos, &s))
		return RUN_TRUNCATED;
	if (!run_streq(s, RUN_MAGIC))
		return RUN_BAD_MAGIC;
	if (!run_next(buf, len, &pos, &s))
		return RUN_TRUNCATED;
	if (!run_token_ok(s))
		return RUN_BAD_TOKEN;
	r->token = s;
	if (!run_next(buf, len, &pos, &r->cwd))
		return RUN_TRUNCATED;
	if (!run_next(buf, len, &pos, &s))
		return RUN_TRUNCATED;
	r->share = s[0] != '\0' ? s : 0;
	if (!run_next(buf, len, &pos, &s))
		return RUN_TRUNCATED;
	r->channel = s[0] != '\0' ? s : 0;

	if (!run_next(buf, len, &pos, &s))
		return RUN_TRUNCATED;
	if (!run_count(s, RUN_MAX_STRINGS, &r->argc))
		return RUN_BAD_COUNT;
	if (r->argc == 0 && r->channel == 0)
		return RUN_EMPTY_ARGV;
	for (i = 0; i < r->argc; i++) {
		if (!run_next(buf, len, &pos, &s))
			return RUN_TRUNCATED;
		/* The cast drops const for execve's prototype only. */
		argv[i] = (char *)s;
	}
	argv[r->argc] = 0;

	if (!run_next(buf, len, &pos, &s))
		return RUN_TRUNCATED;
	if (!run_count(s, RUN_MAX_STRINGS, &r->envc))
		return RUN_BAD_COUNT;
	for (i = 0; i < r->envc; i++) {
		if (!run_next(buf, len, &pos, &s))
			return RUN_TRUNCATED;
		env[i] = (char *)s;
	}
	env[r->envc] = 0;

	if (pos != len)
		return RUN_TRAILING;
	return RUN_OK;
}

#endif
