/* server.h - `mome serve`: an OpenAI-compatible HTTP server for one base
 * model and any number of memories over it (see server.c for the design).
 *
 * The library part reports and returns; the CLI (tools/mome.c) parses the
 * options, reads the API key, installs the signal handlers and exits.
 */
#ifndef MOME_SERVER_H
#define MOME_SERVER_H

#include <stddef.h>

typedef struct srv_params {
    const char *model_path;
    const char *const *memory_paths; /* each served under its base name without .mome */
    int n_memories;
    const char *host;          /* address to bind ("127.0.0.1") */
    int port;                  /* 0: any free port (printed when listening) */
    int n_parallel;            /* slots: sequences decoded together (4) */
    int n_ctx;                 /* tokens per slot (2048) */
    int queue;                 /* requests that may wait for a slot (64); more get 503 */
    double timeout_s;          /* idle connection timeout (a slow or half-sent request) (60) */
    int n_threads;             /* compute threads (0: all cores) */
    const char *api_key;       /* NULL: no authentication */
    size_t max_body;           /* request body limit in bytes (1 MiB); larger: 413 */
    int verbose;               /* one line per request on stderr */
    const char *ready_file;    /* if set, "PORT\n" is written there once listening (tests) */
} srv_params;

srv_params srv_default_params(void);

/* Loads the model and memories, listens, and serves until srv_stop() is
 * called (from a signal handler too); then refuses new requests (503),
 * finishes the ones in flight and returns MOME_OK. On a start-up error
 * returns a negative status (mome_errmsg()). One server per process. */
int srv_run(const srv_params *p);

/* Asks the running server to drain and stop. Async-signal-safe. */
void srv_stop(void);

#endif
