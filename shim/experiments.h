/* gRPC core experiments the fork path cannot live with. */
#ifndef FORKSAFE_EXPERIMENTS_H
#define FORKSAFE_EXPERIMENTS_H

/* Finds the experiments to turn off (only when the shim acts on forks), and
 * lets the hook keep core's answers from then on; called once gRPC is
 * resolved, before its first grpc_init, in every mode but off. */
void fs_experiments_init(void);

#endif
