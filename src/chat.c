/* chat.c - render a conversation with the model's chat template.
 *
 * GGUF files carry a Jinja template (tokenizer.chat_template). Rather than
 * embed a Jinja interpreter, mome does what llama.cpp's built-in templates
 * do: recognise the template family from marker strings and render that
 * family's format. Supported: ChatML (<|im_start|>, SmolLM2, Qwen), Llama-3
 * (<|start_header_id|>), Llama-2 ([INST]), Gemma (<start_of_turn>), Phi-3
 * (<|end|>). A model without a template gets ChatML, as in llama.cpp.
 * Like llama.cpp, a default system message written inside a template's Jinja
 * code is not injected; mome_chat_default_system finds it for callers that
 * want it (mome run/chat --default-system).
 */
#include <stdarg.h>
#include <string.h>

#include "model.h"
#include "util.h"

enum chat_family { CHAT_CHATML, CHAT_LLAMA3, CHAT_LLAMA2, CHAT_GEMMA, CHAT_PHI3 };

static enum chat_family detect(const char *t) {
    if (!t) return CHAT_CHATML;
    if (strstr(t, "<|im_start|>")) return CHAT_CHATML;
    if (strstr(t, "<|start_header_id|>")) return CHAT_LLAMA3;
    if (strstr(t, "<start_of_turn>")) return CHAT_GEMMA;
    if (strstr(t, "<|end|>") && strstr(t, "<|assistant|>")) return CHAT_PHI3;
    if (strstr(t, "[INST]")) return CHAT_LLAMA2;
    return CHAT_CHATML;
}

char *mome_chat_format(const mome_model *m, const mome_chat_msg *msgs, int n, int add_assistant) {
    sbuf b = {0};
    enum chat_family fam = detect(m->chat_template);
    sb_str(&b, "");
    for (int i = 0; i < n; i++) {
        const char *role = msgs[i].role ? msgs[i].role : "user";
        const char *content = msgs[i].content ? msgs[i].content : "";
        switch (fam) {
        case CHAT_CHATML:
            sb_str(&b, "<|im_start|>"); sb_str(&b, role); sb_str(&b, "\n");
            sb_str(&b, content); sb_str(&b, "<|im_end|>\n");
            break;
        case CHAT_LLAMA3:
            sb_str(&b, "<|start_header_id|>"); sb_str(&b, role); sb_str(&b, "<|end_header_id|>\n\n");
            sb_str(&b, content); sb_str(&b, "<|eot_id|>");
            break;
        case CHAT_PHI3:
            sb_str(&b, "<|"); sb_str(&b, role); sb_str(&b, "|>\n"); sb_str(&b, content); sb_str(&b, "<|end|>\n");
            break;
        case CHAT_GEMMA:
            if (strcmp(role, "system") == 0) {
                /* Gemma has no system role: it is prepended to the next user turn */
                sb_str(&b, "<start_of_turn>user\n"); sb_str(&b, content); sb_str(&b, "\n\n");
                if (i + 1 < n && msgs[i + 1].role && strcmp(msgs[i + 1].role, "user") == 0) {
                    sb_str(&b, msgs[i + 1].content ? msgs[i + 1].content : "");
                    i++;
                }
                sb_str(&b, "<end_of_turn>\n");
            } else {
                sb_str(&b, "<start_of_turn>");
                sb_str(&b, strcmp(role, "assistant") == 0 ? "model" : role);
                sb_str(&b, "\n"); sb_str(&b, content); sb_str(&b, "<end_of_turn>\n");
            }
            break;
        case CHAT_LLAMA2:
            if (strcmp(role, "system") == 0) {
                sb_str(&b, "[INST] <<SYS>>\n"); sb_str(&b, content); sb_str(&b, "\n<</SYS>>\n\n");
                if (i + 1 < n && msgs[i + 1].role && strcmp(msgs[i + 1].role, "user") == 0) {
                    sb_str(&b, msgs[i + 1].content ? msgs[i + 1].content : "");
                    i++;
                }
                sb_str(&b, " [/INST]");
            } else if (strcmp(role, "user") == 0) {
                sb_str(&b, "[INST] "); sb_str(&b, content); sb_str(&b, " [/INST]");
            } else {
                sb_str(&b, " "); sb_str(&b, content); sb_str(&b, " </s>");
            }
            break;
        }
    }
    if (add_assistant) {
        switch (fam) {
        case CHAT_CHATML: sb_str(&b, "<|im_start|>assistant\n"); break;
        case CHAT_LLAMA3: sb_str(&b, "<|start_header_id|>assistant<|end_header_id|>\n\n"); break;
        case CHAT_PHI3: sb_str(&b, "<|assistant|>\n"); break;
        case CHAT_GEMMA: sb_str(&b, "<start_of_turn>model\n"); break;
        case CHAT_LLAMA2: break;
        }
    }
    if (b.oom) {
        free(b.p);
        mome_seterr_code(MOME_ERR_NOMEM, "out of memory formatting the chat");
        return NULL;
    }
    return b.p;
}

/* The default system message a ChatML template writes when the conversation
 * has none: the first Jinja string literal (quoted with ' or ") whose text
 * starts with "<|im_start|>system\n" and holds "<|im_end|>" (Qwen2.5:
 * "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";
 * SmolLM2: "You are a helpful AI assistant named SmolLM, ..."). A literal
 * that is concatenated with something else ('... + messages[0]...') is the
 * given system message, not a default, and has no <|im_end|> of its own. */
char *mome_chat_default_system(const mome_model *m) {
    const char *t = m->chat_template;
    if (!t || detect(t) != CHAT_CHATML) return NULL;
    static const char head[] = "<|im_start|>system";
    for (const char *p = t; (p = strstr(p, head)) != NULL; p += sizeof head - 1) {
        if (p == t || (p[-1] != '\'' && p[-1] != '"')) continue; /* not the start of a literal */
        const char quote = p[-1];
        const char *q = p + sizeof head - 1;
        /* the newline after the role, escaped in the Jinja source or not */
        if (q[0] == '\\' && q[1] == 'n') q += 2;
        else if (q[0] == '\n') q += 1;
        else continue;
        sbuf b = {0};
        sb_str(&b, "");
        int ok = 0;
        for (; *q && *q != quote; q++) {
            if (strncmp(q, "<|im_end|>", 10) == 0) {
                ok = 1;
                break;
            }
            char ch[2] = {*q, 0};
            if (*q == '\\' && q[1]) {
                q++;
                ch[0] = *q == 'n' ? '\n' : *q == 't' ? '\t' : *q;
            }
            sb_str(&b, ch);
        }
        if (ok && !b.oom && b.n > 0) return b.p;
        free(b.p);
        if (b.oom) {
            mome_seterr_code(MOME_ERR_NOMEM, "out of memory reading the chat template");
            return NULL;
        }
    }
    return NULL;
}

int32_t mome_token_eot(const mome_model *m) {
    static const char *const names[] = {"<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", NULL};
    const char *want = NULL;
    switch (detect(m->chat_template)) {
    case CHAT_CHATML: want = names[0]; break;
    case CHAT_LLAMA3: want = names[1]; break;
    case CHAT_PHI3: want = names[2]; break;
    case CHAT_GEMMA: want = names[3]; break;
    case CHAT_LLAMA2: break;
    }
    if (want) {
        int32_t id = tokenizer_find(m->tok, want);
        if (id >= 0) return id;
    }
    int32_t e = tokenizer_eot(m->tok);
    return e >= 0 ? e : tokenizer_eos(m->tok);
}
