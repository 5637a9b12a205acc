/*
 * proto.h - the wire protocol between advd and its clients, and the job
 * specs both sides validate with the same code.
 *
 * Transport: newline-delimited JSON over a Unix stream socket, one object
 * per line (at most ADV_PROTO_MAX_LINE bytes before the newline; a longer
 * line is answered with too_large and the connection is closed). Empty
 * lines (also "\r\n") are skipped, so a human can type at the socket.
 *
 *   server, on connect:  {"hello":"advd","version":"0.4.0","protocol":2}
 *   request:             {"id":7,"cmd":"status","job":3}
 *                        id: an integer or a string (echoed back); cmd: one
 *                        of ADV_COMMANDS below; the other keys are the
 *                        command's arguments (adv_request_parse knows which
 *                        each command takes)
 *   success:             {"id":7,"ok":true,"result":{...}}
 *   failure:             {"id":7,"ok":false,"error":{"code":"not_found",
 *                         "message":"no job 3"}}   (id null when unusable)
 *   pushed by watch:     {"event":"progress","job":3,"progress":0.42,...}
 *                        {"event":"state","job":3,"state":"failed","error":"..."}
 *
 * Large things come in pieces under the line limit, pulled by the client:
 * export and images (by name) take "offset" and "length" (at most
 * ADV_CHUNK_MAX bytes an answer) and answer "size" (the whole), "offset",
 * "data" (base64 of that piece) and "eof". Protocol 2: export lost its
 * "path" (the daemon writes no files for clients) and gained the pieces.
 *
 * Error codes are stable and machine-readable (adv_errcode); messages are
 * for humans, name the field at fault and follow git's grammar (lower case,
 * subject quoted, no full stop). Every message is valid UTF-8 with no
 * control characters, whatever bytes the peer sent.
 *
 * Names: adv_proto_* for framing and messages, adv_jobspec_* for job specs.
 * Functions that can fail return 0 or -1 and fill an adv_error.
 */
#ifndef ADV_PROTO_H
#define ADV_PROTO_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/data.h"
#include "core/train.h"

#define ADV_VERSION "0.4.0"
#define ADV_PROTOCOL 2
#define ADV_PROTO_MAX_LINE (1 << 20)
/* The system service's socket (etc/advd.service), advctl's last resort. */
#define ADV_SYSTEM_SOCKET "/run/advd/advd.sock"
#define ADV_ERRLEN 512

/* Flags for every JSON text advd writes: one line, and reals printed with
 * 15 significant digits so that a float such as 0.05 reads "0.05" (spec
 * values are float32, which 9 digits already represent exactly). */
#define ADV_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

/* ------------------------------------------------------------- errors */

typedef enum {
    ADV_E_BAD_REQUEST,      /* not JSON, not an object, bad id/cmd */
    ADV_E_INVALID_ARGUMENT, /* a well-formed request with a bad value */
    ADV_E_NOT_FOUND,
    ADV_E_CONFLICT,         /* e.g. cancelling a finished job */
    ADV_E_TOO_LARGE,
    ADV_E_FORBIDDEN,        /* the peer may not connect, or may not act on that job */
    ADV_E_INTERNAL
} adv_errcode;

typedef struct {
    adv_errcode code;
    char msg[ADV_ERRLEN];
} adv_error;

const char *adv_errcode_name(adv_errcode c);
int adv_errcode_parse(const char *s, adv_errcode *out);

/* Set *e (may be NULL) and return -1. The message is made safe: control
 * characters and bytes that are not valid UTF-8 become '?'. */
int adv_errorf(adv_error *e, adv_errcode code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A JSON value shown in a message: strings quoted and cut at 40 bytes,
 * numbers and literals as written, "an object" / "an array" otherwise. */
void adv_proto_show(const json_t *v, char *out, size_t len);

/* ------------------------------------------------------------- names */

/* import: a model trained elsewhere (advctl import), one checkpoint, never run. */
typedef enum { ADV_JOB_TRAIN, ADV_JOB_EVAL, ADV_JOB_IMPORT } adv_job_kind;
typedef enum {
    ADV_STATE_QUEUED,
    ADV_STATE_RUNNING,
    ADV_STATE_SUCCEEDED,
    ADV_STATE_FAILED,
    ADV_STATE_CANCELLED
} adv_job_state;
#define ADV_NSTATES 5

/* The requests, one row each: X(ENUM, name). One list for the enum, the
 * names (message.c) and the daemon's handler table (commands.c). */
#define ADV_COMMANDS(X)                                                                      \
    X(SUBMIT, submit) X(LIST, list) X(STATUS, status) X(CANCEL, cancel) X(METRICS, metrics)   \
    X(RESULTS, results) X(CHECKPOINTS, checkpoints) X(EXPORT, export) X(WATCH, watch)         \
    X(PING, ping) X(VERSION, version) X(IMAGES, images) X(INFO, info) X(IMPORT, import)     \
    X(PREDICT, predict) X(MONITOR, monitor)

typedef enum {
#define ADV_CMD_ENUM(e, name) ADV_CMD_##e,
    ADV_COMMANDS(ADV_CMD_ENUM)
#undef ADV_CMD_ENUM
    ADV_NCMDS
} adv_cmd;

const char *adv_job_kind_name(adv_job_kind k);     /* "train", "eval", "import" */
int adv_job_kind_parse(const char *s, adv_job_kind *out);
const char *adv_job_state_name(adv_job_state s);   /* "queued", ... */
int adv_job_state_parse(const char *s, adv_job_state *out);
int adv_job_state_final(adv_job_state s);          /* succeeded, failed, cancelled */
const char *adv_cmd_name(adv_cmd c);
int adv_cmd_parse(const char *s, adv_cmd *out);

/* Which checkpoint of a training job: the latest, the best by validation
 * robust accuracy, or the one at the end of an epoch. JSON: "latest",
 * "best" or the epoch number. */
typedef enum { ADV_CKPT_LATEST, ADV_CKPT_BEST, ADV_CKPT_EPOCH } adv_ckpt_which;
typedef struct {
    adv_ckpt_which which;
    int epoch;
} adv_ckpt_ref;

/* field names the value in messages ("checkpoint"). */
int adv_ckpt_ref_parse(const json_t *v, const char *field, adv_ckpt_ref *out, adv_error *e);
json_t *adv_ckpt_ref_json(adv_ckpt_ref r);

/* ------------------------------------------------------------ framing */

/* Incremental line splitter: feed bytes as they arrive, take complete lines
 * out. A line (without its "\n", and "\r" before it) longer than max bytes,
 * or an unfinished one already longer, is an error that sticks: the peer
 * is out of step and the connection should be closed. */
typedef struct {
    char *buf;
    size_t len, cap;   /* bytes held, allocated */
    size_t start;      /* first byte not yet returned as a line */
    size_t scanned;    /* bytes from start already known to hold no "\n" */
    size_t tail;       /* bytes after the last "\n" held: the unfinished line */
    size_t max;
    int too_large;     /* 1: seen, reported after the lines before it; 2: reported */
} adv_linebuf;

void adv_linebuf_init(adv_linebuf *lb, size_t max);
void adv_linebuf_free(adv_linebuf *lb);
/* Append n bytes. Bytes that would make the unfinished line longer than
 * max are dropped and the error is reported by adv_linebuf_next once the
 * complete lines before them are taken. Returns 0, or -1 with e set when
 * out of memory or when feeding past a reported too_large. */
int adv_linebuf_feed(adv_linebuf *lb, const void *data, size_t n, adv_error *e);
/* Next complete non-empty line: 1 with *line (NUL-terminated, valid until
 * the next feed) and *len; 0 when none is complete yet; -1 with e set once
 * the stream has a line over the limit. */
int adv_linebuf_next(adv_linebuf *lb, const char **line, size_t *len, adv_error *e);
/* Bytes of an unfinished line (at end of stream: a truncated message). */
size_t adv_linebuf_pending(const adv_linebuf *lb);

/* One object as a line: a malloc'ed "...\n" (NUL-terminated; *len counts
 * the newline). */
int adv_proto_encode(const json_t *obj, char **line, size_t *len, adv_error *e);
/* One line to a JSON object (new reference): bad_request when it is not
 * JSON or not an object, too_large past ADV_PROTO_MAX_LINE. */
int adv_proto_decode(const char *line, size_t len, json_t **out, adv_error *e);

/* ----------------------------------------------------------- messages */

json_t *adv_proto_greeting(void);
/* A client's check of the greeting line: the protocol must be ours. */
int adv_proto_greeting_check(const json_t *obj, char *version, size_t vlen, adv_error *e);

typedef struct {
    json_t *root;   /* the whole request */
    json_t *id;     /* borrowed from root; NULL when missing or unusable */
    adv_cmd cmd;
} adv_request;

/* Parse and check a request line: envelope (bad_request) and the command's
 * arguments, their names and JSON types (invalid_argument). On failure
 * req->id is still set when the id itself was fine, so the error can echo
 * it; adv_request_free in both cases. */
int adv_request_parse(const char *line, size_t len, adv_request *req, adv_error *e);
void adv_request_free(adv_request *req);

/* Argument access after a successful parse (types were checked). */
const json_t *adv_request_arg(const adv_request *req, const char *key);
int64_t adv_request_int(const adv_request *req, const char *key, int64_t dflt);
const char *adv_request_str(const adv_request *req, const char *key, const char *dflt);

/* Responses; result is stolen (NULL gives {}). id may be NULL (-> null). */
json_t *adv_proto_ok(const json_t *id, json_t *result);
json_t *adv_proto_error(const json_t *id, const adv_error *err);

/* Events for watchers; fields (stolen, may be NULL) are merged in. */
json_t *adv_proto_event_progress(int64_t job, double progress, json_t *fields);
json_t *adv_proto_event_state(int64_t job, adv_job_state state, const char *error);

/* A client's view of one line from the server. */
typedef enum { ADV_MSG_GREETING, ADV_MSG_RESPONSE, ADV_MSG_EVENT } adv_msg_type;
typedef struct {
    json_t *root;          /* owned */
    adv_msg_type type;
    const json_t *id;      /* responses */
    int ok;
    const json_t *result;  /* ok responses */
    adv_error error;       /* failed responses: the server's code and message */
    const char *event;     /* events: "progress" / "state" */
} adv_reply;

int adv_reply_parse(const char *line, size_t len, adv_reply *out, adv_error *e);
void adv_reply_free(adv_reply *r);

/* ------------------------------------------------------------ base64 */

/* RFC 4648 base64 with padding, for binary payloads in JSON strings. The
 * encoding is malloc'ed and NUL-terminated (*outlen may be NULL); NULL when
 * out of memory. The decoding is malloc'ed into *out (*n bytes);
 * invalid_argument for text that is not base64. */
char *adv_base64_encode(const uint8_t *p, size_t n, size_t *outlen);
int adv_base64_decode(const char *s, size_t len, uint8_t **out, size_t *n, adv_error *e);

/* ----------------------------------------------------------- job specs */

#define ADV_NAME_MAX 100
#define ADV_DATASET_MAX 4200
#define ADV_EPS_MAX 16

/* A training job's starting point: another job's checkpoint (job 0: none). */
typedef struct {
    int64_t job;
    adv_ckpt_ref ckpt;
} adv_init_ref;

/* kind "train". */
typedef struct {
    char dataset[ADV_DATASET_MAX];  /* as given: "fashion-mnist", "cifar10:/d" */
    core_data_format fmt;           /* resolved by core_data_resolve */
    char data_dir[CORE_PATH_MAX];
    char model[CORE_SPEC_LEN];      /* preset name or spec, as given */
    core_shape shape;               /* {0} for png: known only once loaded */
    int nclass;                     /* 0 for png */
    core_train_cfg cfg;
    int train_limit;                /* 0: the whole training split */
    int checkpoint_every;           /* epochs between checkpoints */
    int keep_checkpoints;           /* the last K are kept (plus the best) */
    adv_init_ref init;              /* start from this checkpoint's weights */
} adv_train_spec;

/* kind "eval": attacks (or a suite) on a checkpoint of a training job. */
typedef struct {
    int64_t job;                    /* the training job */
    adv_ckpt_ref checkpoint;
    int use_suite;
    char suite[32];                 /* core_suite_preset name */
    core_attack_cfg attack;         /* attack kind and flags (eps per run) */
    int neps;
    float eps[ADV_EPS_MAX];
    int limit;                      /* test examples */
    int sanity;                     /* run the false-robustness probes */
    uint64_t seed;
    /* Beyond adversarial accuracy (core/calib.h, corrupt.h, explain.h). */
    int calibration;                /* ECE/NLL/Brier, clean and adversarial, and T */
    int corruptions;                /* every corruption at every severity */
    int explain;                    /* IG completeness and saliency fragility */
    int explain_limit;              /* examples explained (of the first `limit`) */
    int explain_class;              /* the class explained; -1: each prediction */
    int smoothgrad_samples, ig_steps;
    float smoothgrad_sigma, fragility_eps;
    int images;                     /* an adv_images_kind */
    int images_n;                   /* examples drawn (units: channels) */
    /* Per-method figures, surrogates, units (explain.h, surrogate.h, units.h). */
    char explain_methods[96];       /* comma-separated core_explain methods */
    int method_limit;               /* examples of the per-method figures */
    int gaussian_samples, lime_samples, lime_patch, lime_fill, surrogate_target;
    float gaussian_sigma, lime_kernel_width, ridge_lambda;
    char units_layer[16];           /* "conv1", ... */
    int units_k, units_steps;       /* top examples per channel; ascent steps */
} adv_eval_spec;

/* The pictures an evaluation draws for `advctl images`. */
typedef enum {
    ADV_IMAGES_NONE,
    ADV_IMAGES_ADVERSARIAL,   /* clean, adversarial, perturbation */
    ADV_IMAGES_SALIENCY,      /* input beside its heat map */
    ADV_IMAGES_SMOOTHGRAD,
    ADV_IMAGES_IG,
    ADV_IMAGES_CORRUPTIONS,   /* one example at every severity */
    ADV_IMAGES_GUIDED,        /* input beside its heat map, as saliency */
    ADV_IMAGES_GAUSSIAN,
    ADV_IMAGES_LIME,
    ADV_IMAGES_UNITS,         /* filters, top examples, maximisation of a layer */
    ADV_NIMAGES
} adv_images_kind;
#define ADV_IMAGES_MAX 256

/* A job's processes at most (spec key "procs"; the daemon's launcher
 * decides where they run). */
#define ADV_PROCS_MAX 4096

int adv_images_kind_parse(const char *s, int *out, char *err);
const char *adv_images_kind_name(int v);

typedef struct {
    adv_job_kind kind;
    char name[ADV_NAME_MAX + 1];
    int priority;                   /* higher runs first */
    int threads;                    /* 0: the daemon's default; per process */
    int procs;                      /* processes (MPI ranks) of the job, 1: one */
    adv_train_spec train;           /* kind == ADV_JOB_TRAIN, and ADV_JOB_IMPORT's
                                       dataset and model (the rest: defaults) */
    adv_eval_spec eval;             /* kind == ADV_JOB_EVAL */
} adv_jobspec;

/* Validate a spec completely (every key known, every type and range,
 * the data set readable, the model buildable for its shape): 0, or -1
 * with invalid_argument and a message naming the field. It is
 * adv_jobspec_decode (all of it but the files: no I/O, cheap, for a spec
 * already accepted) then adv_jobspec_check_env (the data set's folder and
 * files are there and readable: at submit, and in the worker). */
int adv_jobspec_parse(const json_t *spec, adv_jobspec *out, adv_error *e);
int adv_jobspec_decode(const json_t *spec, adv_jobspec *out, adv_error *e);
int adv_jobspec_check_env(const adv_jobspec *s, adv_error *e);

/* What a job will need, from its spec alone (estimate.c: arithmetic, no
 * model built). Zero for a PNG folder, whose shape is known only once read. */
typedef struct {
    double params_bytes;  /* weights, gradients, optimiser state, copies */
    double batch_bytes;   /* activations, gradients, scratch, attack workspace */
    double data_bytes;    /* the data set's pixels */
    double total;         /* bytes */
    double params;        /* parameters */
    double flops;         /* of one forward pass of one example */
} adv_job_cost;

/* An evaluation job's batch (worker.c). */
#define ADV_EVAL_BATCH 128

/* The first bytes of a safetensors file of m's parameters (safetensors.c):
 * the length and the JSON header with metadata (an object of strings,
 * stolen); the file goes on with the parameter buffer's bytes as they are.
 * -1 when out of memory. */
int adv_safetensors_head(const core_model *m, json_t *metadata, uint8_t **out, size_t *len);
/* The bytes after the parameters: m's buffers (core_model_buffers) as F32,
 * in the head's order (*len 0 when it has none). -1 when out of memory. */
int adv_safetensors_tail(const core_model *m, uint8_t **out, size_t *len);

/* A safetensors file read from anywhere (safetensors.c lists the limits). */
#define ADV_ST_HEADER_MAX (16 << 20)
#define ADV_ST_TENSORS_MAX 4096
#define ADV_ST_NAME_MAX 127
#define ADV_ST_NDIM_MAX 8
typedef enum { ADV_ST_F32, ADV_ST_F16, ADV_ST_BF16 } adv_st_dtype;
typedef struct {
    char name[ADV_ST_NAME_MAX + 1];
    adv_st_dtype dtype;
    int ndim;
    int64_t dims[ADV_ST_NDIM_MAX];
    size_t begin, end;       /* bytes of the data section */
} adv_st_tensor;
typedef struct {
    int n;
    adv_st_tensor *t;        /* sorted by offset */
    const uint8_t *data;     /* the data section, inside the parsed buffer */
} adv_st_file;

/* Parse and check buf (len bytes, kept alive while *out is used): 0, or -1
 * with invalid_argument (too_large past a size limit) naming what is wrong. */
int adv_safetensors_parse(const uint8_t *buf, size_t len, adv_st_file *out, adv_error *e);
void adv_st_file_free(adv_st_file *f);
const char *adv_st_dtype_name(adv_st_dtype d);   /* "F32", "F16", "BF16" */
int adv_st_dtype_size(adv_st_dtype d);
/* A tensor's values as floats (out: one per element), exactly. */
void adv_st_tensor_floats(const adv_st_file *f, const adv_st_tensor *t, float *out);

/* A model of spec for inputs in and nclass classes with the weights of a
 * safetensors file (import.c): every parameter and buffer by its PyTorch
 * name and shape; buffers must equal the spec's constants; values must be
 * finite. A missing, extra or mis-shaped tensor is an error listing them
 * with their expected and found shapes. */
int adv_safetensors_model(const uint8_t *buf, size_t len, const char *spec, core_shape in,
                          int nclass, core_model **out, adv_error *e);

/* The largest piece of a checkpoint or picture in one answer (export,
 * images): its base64 stays well inside ADV_PROTO_MAX_LINE. */
#define ADV_CHUNK_MAX (512 * 1024)

/* threads 0: every core. */
int adv_train_cost(const adv_train_spec *t, int batch, int threads, adv_job_cost *out,
                   adv_error *e);
/* "3.1 GiB (parameters 12.0 MiB, batch of 128 2.9 GiB, data 52.4 MiB)" */
void adv_job_cost_describe(const adv_job_cost *c, int batch, char *out, size_t len);
void adv_bytes_describe(double bytes, char *out, size_t len);  /* "1.5 GiB" */
int adv_jobspec_parse_text(const char *text, size_t len, adv_jobspec *out, adv_error *e);
int adv_jobspec_decode_text(const char *text, size_t len, adv_jobspec *out, adv_error *e);

/* The canonical form of a validated spec: every key, defaults filled in,
 * fixed key order. adv_jobspec_canonical gives it as malloc'ed text (what
 * the store keeps); parsing either again gives the same spec. */
json_t *adv_jobspec_json(const adv_jobspec *s);
char *adv_jobspec_canonical(const adv_jobspec *s);

/* The keys of a kind's spec, in the table's order, for clients that make
 * a command-line flag of each (advctl submit and eval): the i-th key's
 * name (NULL past the last), how its value is written and, for a BOOL,
 * its default. OTHER: a key a client sets its own way (the eps list, a
 * checkpoint, the evaluated job). */
typedef enum {
    ADV_KEY_INT, ADV_KEY_NUMBER, ADV_KEY_TEXT, ADV_KEY_BOOL, ADV_KEY_INIT, ADV_KEY_OTHER
} adv_key_type;
const char *adv_jobspec_key(adv_job_kind kind, int i, adv_key_type *type, int *bool_default);

/* The shortest decimal that reads back as f, as a double, for JSON: 0.05f
 * is written "0.05", not "0.0500000007". */
double adv_float_json(float f);

#endif
