/* experiment.h - `mome experiment NAME`: the paper's experiments, run in
 * process through the library (see tools/experiment.c). */
#ifndef MOME_EXPERIMENT_H
#define MOME_EXPERIMENT_H

/* argv[0] is "experiment". Returns the process exit status (0 done, 1 error,
 * 2 usage); errors are printed as one line on stderr. Never exits. */
int experiment_main(int argc, char **argv);

/* Experiments in their own files (tools/exp_NAME.c), registered in the table
 * in tools/experiment.c; argv[0] is the experiment's name, same contract. */
int exp_frozen(int argc, char **argv);    /* tools/exp_frozen.c */
int exp_editing(int argc, char **argv);   /* tools/exp_editing.c */
int exp_capacity(int argc, char **argv);  /* tools/exp_capacity.c */
int exp_topk(int argc, char **argv);      /* tools/exp_topk.c */

#endif
