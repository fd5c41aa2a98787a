/*
 * Host-side driver for init/runfile.h, used by tests/runfile_parser.rs.
 *
 * Reads records (u32 little-endian length, then that many bytes) from stdin,
 * parses each from a heap buffer of exactly that size (so AddressSanitizer
 * catches any read past the end) and prints, per record:
 *   "R <error>\n", then the fields as "<tag> <len>\n<bytes>\n"
 *   (tag T token, C cwd, S share, H channel, A argv string, E env string;
 *   a NULL token, share or channel is "<tag> -\n"). Fields after T only
 *   on success.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../init/runfile.h"

static char *argv_buf[RUN_MAX_STRINGS + 1];
static char *env_buf[RUN_MAX_STRINGS + 1];

static void
field(char tag, const char *s)
{
	if (s == NULL) {
		printf("%c -\n", tag);
		return;
	}
	printf("%c %zu\n", tag, strlen(s));
	fwrite(s, 1, strlen(s), stdout);
	putchar('\n');
}

int
main(void)
{
	unsigned char hdr[4];

	while (fread(hdr, 1, 4, stdin) == 4) {
		unsigned long len = (unsigned long)hdr[0] |
		    (unsigned long)hdr[1] << 8 | (unsigned long)hdr[2] << 16 |
		    (unsigned long)hdr[3] << 24;
		char *buf = malloc(len ? len : 1);
		struct run r;
		enum run_error e;
		unsigned long i;

		if (buf == NULL || fread(buf, 1, len, stdin) != len)
			return 2;
		e = run_parse(buf, len, &r, argv_buf, env_buf);
		printf("R %d\n", (int)e);
		field('T', r.token);
		if (e == RUN_OK) {
			field('C', r.cwd);
			field('S', r.share);
			field('H', r.channel);
			for (i = 0; i < r.argc; i++)
				field('A', argv_buf[i]);
			if (argv_buf[r.argc] != NULL)
				return 3;
			for (i = 0; i < r.envc; i++)
				field('E', env_buf[i]);
			if (env_buf[r.envc] != NULL)
				return 3;
		}
		free(buf);
	}
	return ferror(stdin) ? 2 : 0;
}
