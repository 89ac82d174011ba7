/* The floor under process isolation's cost on this machine: a bare round trip between two
 * processes, one byte each way through a pipe, then through a futex in shared memory, no
 * Python (benches/README.md, "Process isolation"). Run it as is (the two processes on
 * whichever CPUs the kernel picks: on 2 vCPUs, different ones) and under `taskset -c 0`
 * (both on one CPU: no wake-up crosses CPUs):
 *
 *   cc -O2 -o /tmp/wakeup_rtt benches/wakeup_rtt.c && /tmp/wakeup_rtt && taskset -c 0 /tmp/wakeup_rtt
 */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { ROUNDS = 20000 };

static double seconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec + now.tv_nsec * 1e-9;
}

static void futex(atomic_int *word, int op, int value) { syscall(SYS_futex, word, op, value, NULL, NULL, 0); }

/* Sets *word to 1 and wakes its waiter. */
static void post(atomic_int *word) {
    atomic_store(word, 1);
    futex(word, FUTEX_WAKE, 1);
}

/* Sleeps until *word is 1, then sets it back to 0. */
static void take(atomic_int *word) {
    while (atomic_load(word) == 0) futex(word, FUTEX_WAIT, 0);
    atomic_store(word, 0);
}

int main(void) {
    int there[2], back[2];
    char byte = 'x';
    if (pipe(there) || pipe(back)) return 1;
    if (fork() == 0) {
        for (int i = 0; i < ROUNDS; i++) {
            if (read(there[0], &byte, 1) != 1 || write(back[1], &byte, 1) != 1) _exit(1);
        }
        _exit(0);
    }
    double started = seconds();
    for (int i = 0; i < ROUNDS; i++) {
        if (write(there[1], &byte, 1) != 1 || read(back[0], &byte, 1) != 1) return 1;
    }
    double pipe_us = (seconds() - started) / ROUNDS * 1e6;
    wait(NULL);

    atomic_int *words = mmap(NULL, 2 * sizeof(atomic_int), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (words == MAP_FAILED) return 1;
    atomic_store(&words[0], 0);
    atomic_store(&words[1], 0);
    if (fork() == 0) {
        for (int i = 0; i < ROUNDS; i++) {
            take(&words[0]);
            post(&words[1]);
        }
        _exit(0);
    }
    started = seconds();
    for (int i = 0; i < ROUNDS; i++) {
        post(&words[0]);
        take(&words[1]);
    }
    double futex_us = (seconds() - started) / ROUNDS * 1e6;
    wait(NULL);
    printf("round trip between two processes: pipe %.1f us, futex %.1f us (%d rounds)\n", pipe_us, futex_us, ROUNDS);
    return 0;
}
