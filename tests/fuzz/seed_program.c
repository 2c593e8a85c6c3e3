/* Compiled into a seed for the symbol-table fuzzer: a program whose own
 * functions carry gRPC's names, as one linked with libgrpc.a does. */
int grpc_init(void);
int grpc_channel_create(int);
static int helper(int x) { return x * 3; }
int grpc_init(void) { return helper(1); }
int grpc_channel_create(int x) { return helper(x) + 1; }
int main(void) { return grpc_init() + grpc_channel_create(2) == 0; }
