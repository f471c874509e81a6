/* finetune.h - the baselines that change the model itself, on the f32
 * training stack (train_stack.h): LoRA adapters on every projection, or full
 * fine-tuning of every weight. One tuner runs both: the same facts, chat
 * template, loss (answer tokens + end of turn), fact batching, Adam and stop
 * rule as memory tuning; only the trainable parameters differ (the stack's
 * tstack_params: the adapters, or all weights). */
#ifndef MOME_FINETUNE_H
#define MOME_FINETUNE_H

#include "facts.h"
#include "model.h"
#include "train_stack.h"

/* p->method is MOME_TUNE_LORA (adapters to p->out_path, the merged model to
 * p->model_out if set) or MOME_TUNE_FULL (the tuned model to p->out_path). */
#define FINETUNE_FULL_LR 1e-4f /* full fine-tuning's default Adam learning rate */
int mome_tune_finetune(mome_model *m, const mome_tune_params *p, mome_tune_report *rep, fact_set *fs);

/* Writes the model held by s (l0 = 0) as a GGUF file the engine loads: m's
 * metadata and tokenizer, general.file_type F32, every weight the stack holds
 * in f32 (LoRA adapters merged: W + (alpha/r) B A), the token embedding in
 * f32 (the stack's, or dequantized), any other tensor copied as it is. */
int finetune_write_model(const tstack *s, const mome_model *m, const char *method, const char *path);

/* m as that f32 file, untrained (the reference "before" of both baselines). */
int finetune_write_f32_base(const mome_model *m, const char *path);

#endif
