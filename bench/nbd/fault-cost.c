/*
 * What a first touch of a page costs on this machine (bench/results/nbd-latency-session28.txt §1):
 * maps 512 MiB, writes one byte per 4 KiB page, writes them again, unmaps, four times; then with
 * MAP_POPULATE (the kernel maps every page first) and with MADV_HUGEPAGE. On bare metal a fault is well under a microsecond; on the
 * session-21..28 VM (a PVM guest) it is ~10.6 µs, every round, so memory a process grows into
 * (held-payload slabs, V8 pages, socket buffers) costs ~2.7 ms per MiB the first time.
 *
 *   cc -O2 -o /tmp/fault-cost bench/nbd/fault-cost.c && /tmp/fault-cost
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static double touch(char *p, size_t n, char v) {
  double t0 = now_ms();
  for (size_t o = 0; o < n; o += 4096) p[o] = v;
  return (now_ms() - t0) / (double)(n >> 20);
}

int main(void) {
  const size_t n = 512ul << 20;
  for (int r = 0; r < 4; r++) {
    char *p = mmap(0, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return perror("mmap"), 1;
    double first = touch(p, n, 1), again = touch(p, n, 2);
    printf("round %d: first touch %.3f ms/MiB, touching again %.4f ms/MiB\n", r, first, again);
    munmap(p, n);
  }
  double t0 = now_ms();
  char *p = mmap(0, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (p == MAP_FAILED) return perror("mmap"), 1;
  double populate = (now_ms() - t0) / (double)(n >> 20);
  printf("MAP_POPULATE: %.3f ms/MiB in mmap, then first touch %.3f ms/MiB\n", populate, touch(p, n, 1));
  munmap(p, n);
  p = mmap(0, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return perror("mmap"), 1;
  madvise(p, n, MADV_HUGEPAGE);
  printf("MADV_HUGEPAGE: first touch %.3f ms/MiB\n", touch(p, n, 1));
  munmap(p, n);
  return 0;
}
