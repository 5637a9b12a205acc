/*
 * launch.h - the command line that starts a job's worker, by the daemon's
 * launcher setting (issue 13):
 *
 *   local    ADVD --worker                                  (procs 1 only)
 *   mpirun   mpirun -np N MPIRUN_ARGS WORKER_MPI --worker
 *   slurm    salloc -n N -J advd-JOB SALLOC_ARGS
 *                srun -n N --input=0 SRUN_ARGS WORKER_MPI --worker
 *
 * mpirun and srun forward the daemon's pipe to rank 0's stdin alone
 * (srun: --input=0) and every rank's stdout; the MPI worker keeps ranks
 * other than 0 off stdout. The *_ARGS come from the daemon's settings,
 * never from a client, split on blanks (no quoting). WORKER_MPI is the
 * worker_mpi setting, or advd-worker-mpi beside the daemon's binary.
 */
#ifndef ADVD_LAUNCH_H
#define ADVD_LAUNCH_H

#include <stddef.h>
#include <stdint.h>

typedef enum { ADVD_LAUNCH_LOCAL, ADVD_LAUNCH_MPIRUN, ADVD_LAUNCH_SLURM } advd_launcher;

int advd_launcher_parse(const char *s, int *out);
const char *advd_launcher_name(int l);

/* Words of a command line at most. */
#define ADVD_LAUNCH_ARGV_MAX 96

typedef struct {
    int launcher;               /* advd_launcher */
    const char *exe;            /* the daemon's binary */
    const char *worker_mpi;     /* "" : advd-worker-mpi beside exe */
    const char *mpirun_args, *salloc_args, *srun_args;
} advd_launch_cfg;

/* The worker's argv for job (procs processes), NULL-terminated; its words
 * point into buf (len bytes). Returns the word count, or -1 with err set
 * (procs > 1 with the local launcher, a command line too long). */
int advd_launch_argv(const advd_launch_cfg *c, int64_t job, int procs, char *buf, size_t len,
                     char *argv[ADVD_LAUNCH_ARGV_MAX + 1], char *err);

/* Whether the launcher can start a worker: mpirun and slurm need the MPI
 * worker (an executable file at its path here, which on a cluster must be
 * that on every node). 0, or -1 with err naming the file. */
int advd_launch_check(const advd_launch_cfg *c, char *err);

/* argv as one line for the log, words joined by blanks. */
void advd_launch_line(char *const argv[], char *out, size_t len);

#endif
