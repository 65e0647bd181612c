/* Baseline for the process-table benchmark: read every /proc/PID/status and
 * parse the NSpid line, as the daemon's full resync does. Prints the median
 * of N runs in milliseconds, and how many PIDs were read. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  int runs = argc > 1 ? atoi(argv[1]) : 10;
  double *t = calloc(runs, sizeof(double));
  static char buf[65536];
  long pids = 0, sum = 0;
  for (int r = 0; r < runs; r++) {
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    DIR *d = opendir("/proc");
    struct dirent *e;
    pids = 0;
    while ((e = readdir(d)) != NULL) {
      if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
      char path[64];
      snprintf(path, sizeof path, "/proc/%s/status", e->d_name);
      int fd = open(path, O_RDONLY);
      if (fd < 0) continue;
      ssize_t n = read(fd, buf, sizeof buf - 1);
      close(fd);
      if (n <= 0) continue;
      buf[n] = 0;
      char *p = strstr(buf, "\nNSpid:");
      if (!p) continue;
      char *end = strchr(p + 1, '\n');
      if (end) *end = 0;
      char *last = strrchr(p, '\t');
      sum += last ? atol(last + 1) : 0;
      pids++;
    }
    closedir(d);
    clock_gettime(CLOCK_MONOTONIC, &b);
    t[r] = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
  }
  qsort(t, runs, sizeof(double), cmp);
  printf("{\"median_ms\":%.3f,\"pids\":%ld,\"checksum\":%ld}\n", t[runs / 2], pids, sum);
  return 0;
}
