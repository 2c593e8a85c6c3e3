/* The policy for gRPC compiled into another object (GRPC_FORKSAFE_EMBEDDED). */
#ifndef FORKSAFE_EMBEDDED_H
#define FORKSAFE_EMBEDDED_H

/* Start-up, before the program's main(): under policy `reset`, in a Python
 * interpreter, turns on grpcio's own fork handling with the native resolver,
 * each only where the user has not set it. */
void fs_embedded_init(void);

#endif
