/* SPDX-License-Identifier: MIT */
/*
 * Runs a libFuzzer target over every regular file in the directories (or the
 * files) named on the command line, so that each fuzz target's seed corpus is
 * an ordinary test in every build, sanitizers included. Linked instead of
 * libFuzzer's main; generic over targets.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_MAX_FILE (64u * 1024 * 1024)

static int replay_file(const char *path)
{
	struct stat st;
	uint8_t *buf;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > REPLAY_MAX_FILE) {
		fprintf(stderr, "replay: skipping %s\n", path);
		if (fd >= 0)
			close(fd);
		return 0;
	}
	/* An exact-size allocation lets ASan catch reads past the input. */
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (got < (size_t)st.st_size) {
		ssize_t k = read(fd, buf + got, (size_t)st.st_size - got);

		if (k <= 0)
			break;
		got += (size_t)k;
	}
	close(fd);
	LLVMFuzzerTestOneInput(buf, got);
	free(buf);
	return 1;
}

int main(int argc, char **argv)
{
	unsigned long count = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s DIR|FILE...\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		struct dirent **names;
		int n = scandir(argv[i], &names, NULL, alphasort);

		if (n < 0) {
			if (replay_file(argv[i]) < 0)
				return 1;
			count++;
			continue;
		}
		for (int k = 0; k < n; k++) {
			char path[4096];
			int w = snprintf(path, sizeof(path), "%s/%s", argv[i], names[k]->d_name);

			if (names[k]->d_name[0] != '.' && w > 0 && (size_t)w < sizeof(path)) {
				int r = replay_file(path);

				if (r < 0)
					return 1;
				count += (unsigned long)r;
			}
			free(names[k]);
		}
		free(names);
	}
	printf("1..1\nok 1 - replayed %lu inputs\n", count);
	return 0;
}
