/* emit_c.h — the C backend: loop IR → NAME.c + NAME.h. Reads only the loop
 * IR (compiler/loopir/loopir.h) and targets the runtime's public header. Output is
 * a pure function of the loop module, so identical input gives identical
 * bytes. */
#ifndef GATTNC_EMIT_C_H
#define GATTNC_EMIT_C_H

#include <stdio.h>

#include "loopir.h"

/* NAME.c: includes "<header_name>"; returns 0 or -1 on a write error. */
int emit_c_source(FILE *out, const LoopModule *m, const char *header_name);
/* NAME.h: the public API (types, tables, entry points). */
int emit_c_header(FILE *out, const LoopModule *m);
/* NAME_weights.c: every parameter as a constant array (data[i] holds
 * m->params[i], already checked to have its dtype and shape) and
 * NAME_init_embedded. `source` names the weights file in the comment. */
int emit_c_weights(FILE *out, const LoopModule *m, const char *header_name, const char *source,
                   const void *const *data);

/* Shared helpers of the two emitters (emit_header.c). */
void emit_c_string_literal(StrBuf *sb, const char *s);
/* A C identifier from any text: [A-Za-z0-9_], never starting with a digit. */
void emit_c_ident(StrBuf *sb, const char *s);
/* The model's C name (NAME of NAME.h, NAME_init, ...) from a file name; see emit_header.c. */
void emit_c_model_ident(StrBuf *sb, const char *s);
const char *emit_c_ctype(IrDType dt); /* "float" / "int32_t" */

#endif
