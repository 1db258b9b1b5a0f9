/* A libmodbus TCP client: reads the given register windows round-robin for SECONDS and
 * prints "requests registers cpu_seconds wall_seconds". The floor for our Python client.
 * Usage: client PORT SECONDS FUNCTION START:COUNT [START:COUNT ...]  (FUNCTION 3 or 4) */
#include <modbus.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 5) return 2;
    int port = atoi(argv[1]);
    double seconds = atof(argv[2]);
    int function = atoi(argv[3]);
    int n = argc - 4, starts[1024], counts[1024];
    for (int i = 0; i < n && i < 1024; i++) sscanf(argv[4 + i], "%d:%d", &starts[i], &counts[i]);
    modbus_t *ctx = modbus_new_tcp("127.0.0.1", port);
    if (modbus_connect(ctx) < 0) return 1;
    uint16_t regs[MODBUS_MAX_READ_REGISTERS];
    long requests = 0, registers = 0;
    double start = now(), end = start + seconds;
    while (now() < end) {
        for (int i = 0; i < n; i++) {
            int got = function == 4 ? modbus_read_input_registers(ctx, starts[i], counts[i], regs)
                                    : modbus_read_registers(ctx, starts[i], counts[i], regs);
            if (got < 0) return 1;
            requests++;
            registers += got;
        }
    }
    double wall = now() - start;
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    double cpu = usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 + usage.ru_stime.tv_sec +
                 usage.ru_stime.tv_usec / 1e6;
    printf("%ld %ld %.4f %.4f\n", requests, registers, cpu, wall);
    modbus_close(ctx);
    modbus_free(ctx);
    return 0;
}
