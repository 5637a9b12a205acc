/*
 * advd.h - the daemon's shared state and the functions its modules offer
 * each other (main.c, server.c, commands.c, scheduler.c; worker.c is the
 * child-process side and shares only advd_worker_main).
 *
 * One struct advd holds everything the event loop needs and is passed to
 * every function: there are no hidden globals. Only the daemon process
 * writes the database; workers talk to it over pipes (see worker.c for the
 * pipe protocol).
 */
#ifndef ADVD_H
#define ADVD_H

#include <stdio.h>
#include <sys/un.h>
#include <uv.h>

#include "core/dist.h"
#include "daemon/launch.h"
#include "daemon/store.h"
#include "proto/proto.h"

#define ADVD_SOCKET_MAX ((int)sizeof(((struct sockaddr_un *)0)->sun_path))
/* A client whose unread responses pile up beyond this is disconnected. */
#define ADVD_CLIENT_QUEUE_MAX ((size_t)64 << 20)
/* Above this, a client's requests are not read until its responses drain. */
#define ADVD_CLIENT_QUEUE_PAUSE ((size_t)1 << 20)

/* Every setting, one row each: X(key, kind, field, lo, hi, arg, help).
 * options.c turns the table into the configuration-file and command-line
 * parser and the usage text; kinds are described there. */
#define ADVD_OPTIONS(X)                                                                          \
    X(socket, PATH, socket_path, 0, 0, "PATH", "the Unix socket clients connect to")            \
    X(socket_mode, MODE, socket_mode, 0, 0777, "MODE",                                          \
      "the socket's file mode (0600: this user; 0660 with --socket-group)")                      \
    X(socket_group, NAME, socket_group, 0, 0, "GROUP",                                          \
      "the socket's group; its members may connect (system service)")                           \
    X(db, PATH, db_path, 0, 0, "PATH", "the SQLite database")                                    \
    X(workers, COUNT, workers, 1, 256, "N", "jobs run at once")                                  \
    X(threads, COUNT, threads, 0, 1024, "N", "OpenMP threads per job (0: all cores)")            \
    X(retries, COUNT, retries, 0, 100, "N", "automatic restarts of a failed job")                \
    X(grace, SECONDS, grace_ms, 0, 3600, "SECONDS",                                             \
      "time a stopped worker gets to checkpoint before it is killed")                           \
    X(max_clients, COUNT, max_clients, 1, 1000000, "N", "client connections at once")            \
    X(max_clients_per_user, COUNT, max_clients_per_user, 1, 1000000, "N",                        \
      "connections of one uid at once (root and the daemon's uid: no limit)")                   \
    X(reserved_clients, COUNT, reserved_clients, 0, 1000, "N",                                   \
      "of max_clients, slots kept for root and the daemon's uid")                               \
    X(line_timeout, SECONDS, line_timeout_ms, 0, 86400, "SECONDS",                              \
      "a request line begun must be complete within this (0: no limit)")                        \
    X(idle_timeout, SECONDS, idle_timeout_ms, 0, 31536000, "SECONDS",                           \
      "close a connection idle this long, watchers excepted (0: never)")                        \
    X(max_queued_per_user, COUNT, max_queued_per_user, 1, 100000000, "N",                        \
      "queued jobs of one user at once")                                                        \
    X(max_job_memory, BYTES, max_job_memory, 0, 1e18, "SIZE",                                   \
      "the largest memory estimate a job may have (0: half the machine's memory)")              \
    X(final_eval_limit, COUNT, final_eval_limit, 0, 100000000, "N",                             \
      "test images of a training job's final evaluation (0: all)")                              \
    X(drift_alpha, REAL, drift_alpha, 1e-6, 0.5, "P",                                          \
      "a drift monitor's significance: a clean window alarms with at most this probability")    \
    X(drift_permutations, COUNT, drift_permutations, 0, 100000, "N",                             \
      "permutations of a monitor's MMD test")                                                   \
    X(drift_points, COUNT, drift_points, 10, 20000, "N",                                         \
      "points per side of a monitor's MMD test (more are subsampled)")                          \
    X(drift_sigma, REAL, drift_sigma, 0.1, 100, "K",                                             \
      "a monitor's CBPE alarm: outside the reference windows' mean +- K sd")                    \
    X(launcher, LAUNCHER, launcher, 0, 0, "NAME",                                                \
      "how a job's worker starts: local, mpirun or slurm (procs > 1: not local)")               \
    X(mpirun_args, WORDS, mpirun_args, 0, 0, "ARGS",                                            \
      "mpirun's options before the worker's name (launcher mpirun)")                            \
    X(salloc_args, WORDS, salloc_args, 0, 0, "ARGS",                                            \
      "salloc's options: partition, time limit, ... (launcher slurm)")                          \
    X(srun_args, WORDS, srun_args, 0, 0, "ARGS",                                                \
      "srun's options before the worker's name (launcher slurm)")                               \
    X(worker_mpi, PATH, worker_mpi, 0, 0, "PATH",                                               \
      "the MPI worker (default: advd-worker-mpi beside advd)")                                  \
    X(foreground, BOOL, foreground, 0, 1, "", "log to stderr and do not detach")

typedef struct {
    char socket_path[ADVD_SOCKET_MAX];
    char db_path[CORE_PATH_MAX];
    char socket_group[64];
    int socket_mode;
    int workers;           /* jobs run at once */
    int threads;           /* OpenMP threads per job (0: all cores) */
    int retries;           /* automatic restarts of a failed job */
    int grace_ms;          /* a stopped worker is killed after this */
    int max_clients;
    int max_clients_per_user;
    int reserved_clients;  /* of max_clients, for root and the daemon's uid */
    int line_timeout_ms;   /* a partial request line may wait this long */
    int idle_timeout_ms;   /* 0: idle connections stay */
    int max_queued_per_user;
    int64_t max_job_memory; /* bytes; 0 at parse time: set from the machine's memory */
    int final_eval_limit;  /* test images of a training job's final evaluation (0: all) */
    double drift_alpha;    /* drift monitors (monitor.c, core/drift.h) */
    int drift_permutations, drift_points;
    double drift_sigma;
    int launcher;          /* advd_launcher (launch.h) */
    char mpirun_args[1024], salloc_args[1024], srun_args[1024];
    char worker_mpi[CORE_PATH_MAX]; /* "": advd-worker-mpi beside advd */
    int foreground;        /* log to stderr instead of a file next to the db */
} advd_options;

/* users.c: uid -> name, for job listings. */
#define ADVD_USER_CACHE 32
typedef struct {
    int n, next;
    unsigned uid[ADVD_USER_CACHE];
    char name[ADVD_USER_CACHE][64];
} advd_user_cache;

typedef struct advd_client advd_client;
typedef struct advd_worker advd_worker;
typedef struct advd_conns advd_conns;     /* server.c's own state */

typedef struct advd {
    advd_options opt;
    uv_loop_t loop;
    int loop_ok;               /* uv_loop_init succeeded */
    adv_store *store;
    uv_pipe_t server;
    int listening;
    advd_client *clients;      /* a doubly linked list */
    int nclients;              /* admitted ones (counted against the limits) */
    advd_conns *conns;
    struct advd_tasks *tasks;  /* score.c: work off the loop */
    struct advd_walckpt *walckpt; /* walckpt.c: the WAL's checkpoints, off the loop */
    struct advd_uploads *uploads; /* import.c: uploads in progress (NULL: none yet) */
    advd_worker *workers;      /* running jobs, a doubly linked list */
    int nworkers;
    uv_signal_t sig_term, sig_int;
    uv_timer_t kick;           /* runs the scheduler after the current callback */
    int stopping;              /* SIGTERM/SIGINT seen: no new work */
    int unrecorded;            /* a job's end could not be written (disk full): retry */
    int lock_fd;
    char exe[CORE_PATH_MAX];            /* this binary, for spawning workers */
    FILE *log;
    advd_user_cache users;
} advd;

/* main.c */
void advd_log(advd *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A job changed state: a log line, and a state event for its watchers. */
void advd_job_event(advd *d, int64_t job, adv_job_state state, const char *error);
/* Called when a worker ends: finishes a shutdown once the last is gone. */
void advd_maybe_exit(advd *d);

/* users.c: ownership. owner is a job's (-1: the daemon's user); uid a peer's. */
unsigned advd_owner_uid(int64_t owner);
int advd_privileged(unsigned uid);          /* root or the daemon's own uid */
int advd_may_act(unsigned uid, int64_t owner);
const char *advd_user_name(advd *d, int64_t owner);

/* options.c */
void advd_options_defaults(advd_options *o);
/* One setting by its configuration-file name (0, or -1 with err). */
int advd_option_set(advd_options *o, const char *key, const char *value, char *err);
/* The configuration file's "key = value" lines from f (name: for messages). */
int advd_options_read(advd_options *o, FILE *f, const char *name, char *err);
/* 1: --key takes a value; 0: a flag (bool); -1: no such setting. */
int advd_option_arity(const char *key);
void advd_options_usage(FILE *f);

/* server.c */
int advd_server_start(advd *d, char *err);
void advd_server_stop(advd *d);           /* stop accepting; remove the socket */
void advd_server_close_clients(advd *d);
/* Push an event (stolen) to the watchers of job; a final state event ends
 * their subscriptions. */
void advd_notify(advd *d, int64_t job, json_t *event);
void advd_client_send(advd_client *c, json_t *msg);   /* msg stolen */
int advd_client_watch(advd_client *c, int64_t job);
/* The connection side's counters as a JSON object (the info request). */
json_t *advd_server_stats(advd *d);
/* The connecting user's uid (SO_PEERCRED), for job ownership. */
unsigned advd_client_uid(const advd_client *c);
/* A connection by a number never reused, for answers given later (a
 * scoring task's): NULL once it is gone. */
uint64_t advd_client_serial(const advd_client *c);
advd_client *advd_client_find(advd *d, uint64_t serial);

/* commands.c: one request, answered through advd_client_send. */
void advd_command(advd *d, advd_client *c, const adv_request *req);

/* transfer.c: one piece of a checkpoint (export) or the pictures of an
 * evaluation (images) for a client, as the answer's result. */
int advd_export_piece(advd *d, const adv_job *j, const adv_request *req, json_t **out,
                      adv_error *e);
int advd_images_answer(advd *d, const adv_job *j, const adv_request *req, json_t **out,
                       adv_error *e);

/* import.c: one piece of a safetensors file; the last makes the job of
 * kind import with its checkpoint. advd_imports_free at exit. */
int advd_import_piece(advd *d, unsigned uid, const adv_request *req, json_t **out,
                      adv_error *e);
void advd_imports_free(advd *d);

/* walckpt.c: WAL checkpoints in the thread pool, on a second connection
 * (the loop's own connection stops checkpointing); stop before closing
 * the store. */
int advd_walckpt_start(advd *d, char *err);
void advd_walckpt_stop(advd *d);

/* scheduler.c */
void advd_schedule_soon(advd *d);         /* start queued jobs after this callback */
/* Ask the worker of a running job to stop; 0 when it was running here. */
int advd_cancel_running(advd *d, int64_t job);
void advd_scheduler_shutdown(advd *d);    /* ask every worker to checkpoint and exit */
void advd_scheduler_kill(advd *d);        /* second signal: kill them now */
/* The launcher settings (launch.h) of d's workers. */
advd_launch_cfg advd_launch_of(const advd *d);

/* worker.c: the entry point of `advd --worker`. */
/* dist: the MPI worker's ranks (daemon/worker_mpi.c); NULL: one process. */
int advd_worker_main(core_dist *dist);

#endif
