/* A libmodbus TCP server on 127.0.0.1: the fast, C-speed device for Modbus benchmarks.
 * Serves 10,000 holding and input registers (value = address) to any unit id, one client
 * connection at a time, until killed. Prints "listening <port>" once ready.
 * Usage: server PORT */
#include <errno.h>
#include <modbus.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 1502;
    modbus_t *ctx = modbus_new_tcp("127.0.0.1", port);
    modbus_mapping_t *map = modbus_mapping_new(2000, 2000, 10000, 10000);
    if (ctx == NULL || map == NULL) return 1;
    for (int i = 0; i < 10000; i++) {
        map->tab_registers[i] = (uint16_t)i;
        map->tab_input_registers[i] = (uint16_t)i;
    }
    int listener = modbus_tcp_listen(ctx, 1);
    if (listener < 0) { fprintf(stderr, "listen: %s\n", modbus_strerror(errno)); return 1; }
    printf("listening %d\n", port);
    fflush(stdout);
    uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
    for (;;) {
        if (modbus_tcp_accept(ctx, &listener) < 0) continue;
        for (;;) {
            int length = modbus_receive(ctx, query);
            if (length > 0) modbus_reply(ctx, query, length, map);
            else if (length < 0) break;   /* the client went away: accept the next one */
        }
        modbus_close(ctx);
    }
}
