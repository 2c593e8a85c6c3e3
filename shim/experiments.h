/* gRPC core experiments the fork path cannot live with. */
#ifndef FORKSAFE_EXPERIMENTS_H
#define FORKSAFE_EXPERIMENTS_H

/* Finds the experiments to turn off; called once gRPC is resolved, before its
 * first grpc_init. */
void fs_experiments_init(void);

#endif
