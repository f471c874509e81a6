/* lora.c - LoRA baseline (in progress). */
#include "facts.h"
#include "model.h"
#include "util.h"
int mome_tune_lora(mome_model *m, const mome_tune_params *p, mome_tune_report *rep, fact_set *fs);
int mome_tune_lora(mome_model *m, const mome_tune_params *p, mome_tune_report *rep, fact_set *fs) {
    return mome_seterr_code(MOME_ERR_UNSUPPORTED, "--method lora is not implemented yet");
}
