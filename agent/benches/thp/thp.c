// Side-by-side: IPT_SO_GET_ENTRIES into a MAP_POPULATE buffer of 4 KiB pages vs one madvise(MADV_HUGEPAGE)'d and
// populated with MADV_POPULATE_WRITE. Prints per-mode median of the getsockopt and of the buffer preparation.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e3 + t.tv_nsec / 1e6; }
static int cmp(const void *a, const void *b) { double x = *(double *)a, y = *(double *)b; return x < y ? -1 : x > y; }
int main(int argc, char **argv) {
    const char *table = argc > 1 ? argv[1] : "nat";
    int runs = argc > 2 ? atoi(argv[2]) : 7;
    int s = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP);
    unsigned char info[84] = {0};
    strcpy((char *)info, table);
    socklen_t l = sizeof info;
    if (getsockopt(s, IPPROTO_IP, 64, info, &l)) { perror("GET_INFO"); return 1; }
    unsigned size, num; memcpy(&size, info + 80, 4); memcpy(&num, info + 76, 4);
    size_t len = 40 + size;
    printf("table %s: %u bytes in %u entries (%.0f bytes each)\n", table, size, num, (double)size / num);
    for (int mode = 0; mode < 2; mode++) {
        double prep[64], copy[64];
        for (int r = 0; r < runs * 2; r++) {
            int m = r % 2; // interleave the modes, so load changes hit both alike
            double t0 = now();
            void *p;
            if (m == 0) {
                p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
            } else {
                p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (madvise(p, len, MADV_HUGEPAGE)) perror("MADV_HUGEPAGE");
                if (madvise(p, len, MADV_POPULATE_WRITE)) perror("MADV_POPULATE_WRITE");
            }
            double t1 = now();
            memcpy(p, table, strlen(table) + 1);
            memcpy((char *)p + 32, &size, 4);
            socklen_t bl = len;
            if (getsockopt(s, IPPROTO_IP, 65, p, &bl)) { perror("GET_ENTRIES"); return 1; }
            double t2 = now();
            if (m == mode) { prep[r / 2] = t1 - t0; copy[r / 2] = t2 - t1; }
            if (r == 1 && m == 1 && mode == 1) {
                FILE *f = fopen("/proc/self/smaps_rollup", "r"); char line[256];
                while (f && fgets(line, sizeof line, f)) if (strstr(line, "AnonHugePages")) printf("  THP mode: %s", line);
                if (f) fclose(f);
            }
            munmap(p, len);
        }
        qsort(prep, runs, sizeof(double), cmp); qsort(copy, runs, sizeof(double), cmp);
        printf("%s: prepare median %.1f ms, getsockopt median %.1f ms (min %.1f, max %.1f), total %.1f ms\n",
               mode ? "MADV_HUGEPAGE + MADV_POPULATE_WRITE" : "MAP_POPULATE 4 KiB pages",
               prep[runs / 2], copy[runs / 2], copy[0], copy[runs - 1], prep[runs / 2] + copy[runs / 2]);
    }
    return 0;
}
