/* emit_header.c — writes NAME.h, the public face of a compiled model: the
 * model struct (caller-allocated, no hidden state), NAME_ARENA_BYTES, the
 * parameter/input/output tables and the typed entry points. It opens with a
 * short tutorial, the way a library header should. */
#include <ctype.h>
#include <string.h>

#include "emit_c.h"
#include "emit_count.h"
#include "emit_knobs.h"

void emit_c_string_literal(StrBuf *sb, const char *s) {
  sb_append(sb, "\"");
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\')
      sb_printf(sb, "\\%c", ch);
    else if (ch < 0x20 || ch >= 0x7f)
      sb_printf(sb, "\\%03o", ch);
    else if (ch == '?' && s[1] == '?') /* no trigraphs */
      sb_append(sb, "?\"\"");
    else
      sb_appendn(sb, (const char *)&ch, 1);
  }
  sb_append(sb, "\"");
}

void emit_c_ident(StrBuf *sb, const char *s) {
  if (!*s || isdigit((unsigned char)*s)) sb_append(sb, "_");
  for (; *s; s++) {
    char ch = isalnum((unsigned char)*s) ? *s : '_';
    sb_appendn(sb, &ch, 1);
  }
}

/* The model's C name, from the output file name: `my-model.c` -> my_model.
 * The name becomes a type (typedef struct NAME), functions (NAME_init, ...)
 * and macros (NAME_ARENA_BYTES) at file scope of C that includes
 * <math.h>, <stdint.h>, <string.h> and gat_runtime.h, so it must not start
 * with a digit or '_' (reserved there) -- `3d-model` gets the prefix `model_`
 * -- nor be a C keyword, a standard name the generated code sees, or the
 * runtime's gat / gat_* -- `int` gets the suffix `_model`. Other names are
 * unchanged. */
void emit_c_model_ident(StrBuf *sb, const char *s) {
  static const char *const taken[] = {
      "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else", "enum", "extern",
      "float", "for", "goto", "if", "inline", "int", "long", "register", "restrict", "return", "short", "signed",
      "sizeof", "static", "struct", "switch", "typedef", "union", "unsigned", "void", "volatile", "while",
      "bool", "true", "false", "alignas", "alignof", "constexpr", "nullptr", "static_assert", "thread_local",
      "typeof", "typeof_unqual", "asm", "fortran", "main", "NULL", "errno", "assert", "EOF",
      "int8_t", "int16_t", "int32_t", "int64_t", "uint8_t", "uint16_t", "uint32_t", "uint64_t", "size_t",
      "ptrdiff_t", "intptr_t", "uintptr_t", "float_t", "double_t", "memcpy", "memset", "memmove", "memcmp",
      "strlen", "strcmp", "malloc", "free", "abort", "exit", "printf", "fprintf", "snprintf", "FILE", "stderr",
      "stdout", "exp", "expf", "log", "logf", "log1p", "log1pf", "sqrt", "sqrtf", "tanh", "tanhf", "erf", "erff",
      "pow", "powf", "fabs", "fabsf", "fmax", "fmaxf", "fmin", "fminf", "fmod", "fmodf", "floor", "floorf",
      "ceil", "ceilf", "round", "roundf", "isnan", "isinf", "isfinite", "signbit", "INFINITY", "NAN",
      "HUGE_VAL", "math_errhandling"};
  StrBuf id = {0};
  if (!isalpha((unsigned char)*s)) sb_append(&id, "model_");
  for (const char *p = s; *p; p++) {
    char ch = isalnum((unsigned char)*p) ? *p : '_';
    sb_appendn(&id, &ch, 1);
  }
  const char *t = sb_cstr(&id);
  int clash = !strcmp(t, "gat") || !strncmp(t, "gat_", 4);
  for (size_t i = 0; !clash && i < sizeof taken / sizeof taken[0]; i++) clash = !strcmp(t, taken[i]);
  sb_append(sb, t);
  if (clash) sb_append(sb, "_model");
  sb_free(&id);
}

/* A parameter name of the NAME_forward prototype: the model's input/output
 * name, with "_" appended when it would clash with the prototype's own
 * parameters (m, T) or with a C keyword or type name (the names are only
 * documentation in a prototype, so this changes no ABI). */
static void emit_c_param_ident(StrBuf *sb, const char *s) {
  static const char *const taken[] = {
      "m", "T", "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else", "enum",
      "extern", "float", "for", "goto", "if", "inline", "int", "long", "register", "restrict", "return", "short",
      "signed", "sizeof", "static", "struct", "switch", "typedef", "union", "unsigned", "void", "volatile",
      "while", "bool", "true", "false", "int32_t", "int64_t", "uint8_t", "uint32_t", "uint64_t", "size_t",
      "NULL", "errno", "asm", "fortran"};
  emit_c_ident(sb, s);
  for (size_t i = 0; i < sizeof taken / sizeof taken[0]; i++)
    if (!strcmp(s, taken[i]) || (s[0] == '_' && (s[1] == '_' || isupper((unsigned char)s[1])))) {
      sb_append(sb, "_");
      break;
    }
}

const char *emit_c_ctype(IrDType dt) { return dt == IR_F32 ? "float" : "int32_t"; }

static void shape_text(StrBuf *sb, IrDType dt, IrShape s) {
  char buf[160];
  ir_type_str(buf, sizeof buf, dt, s);
  sb_append(sb, buf);
}

int emit_c_header(FILE *out, const LoopModule *m) {
  StrBuf sb = {0}, up = {0};
  const char *N = m->name;
  for (const char *p = N; *p; p++) {
    char ch = (char)toupper((unsigned char)*p);
    sb_appendn(&up, &ch, 1);
  }
  const char *U = sb_cstr(&up);
  sb_printf(&sb,
            "/* %s.h — generated by gattnc; do not edit.\n"
            " *\n"
            " * Usage (no allocation inside; all memory is yours):\n"
            " *\n"
            " *   static unsigned char arena[%s_ARENA_BYTES]; (8-byte aligned; 64 is best)\n"
            " *   %s model;\n"
            " *   if (%s_init(&model, arena, sizeof arena, weights, weights_len) != GAT_OK)\n"
            " *     fprintf(stderr, \"%%s\\n\", %s_message(&model));\n"
            " *   %s_forward(&model, <inputs>, T, <outputs>);  continues from the state\n"
            " *   %s_reset(&model);                             back to position 0\n"
            " *\n"
            " * `weights` is a safetensors blob (kept by you while the model is used).\n"
            " * Inputs and outputs are dense row-major arrays; T is the number of new\n"
            " * tokens of this call, 1 <= T and position + T <= %s_MAX_T.\n",
            N, U, N, N, N, N, N, U);
  sb_append(&sb, " *\n * Inputs:\n");
  for (int i = 0; i < m->ninputs; i++) {
    sb_printf(&sb, " *   %s : ", m->inputs[i].name);
    shape_text(&sb, m->inputs[i].dtype, m->inputs[i].shape);
    sb_append(&sb, "\n");
  }
  sb_append(&sb, " * Outputs:\n");
  for (int i = 0; i < m->noutputs; i++) {
    sb_printf(&sb, " *   %s : ", m->outputs[i].name);
    shape_text(&sb, m->outputs[i].dtype, m->outputs[i].shape);
    sb_append(&sb, "\n");
  }
  sb_append(&sb, " */\n");
  sb_printf(&sb, "#ifndef %s_GAT_H\n#define %s_GAT_H\n\n", U, U);
  sb_append(&sb, "#include <stddef.h>\n#include <stdint.h>\n\n#include \"gat_runtime.h\"\n\n");
  sb_append(&sb, "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n");
  sb_printf(&sb, "#define %s_ARENA_BYTES ((size_t)%lld)\n", U, (long long)m->arena_bytes);
  sb_printf(&sb, "#define %s_MAX_T %lld\n", U, (long long)m->max_T);
  sb_printf(&sb, "#define %s_NUM_PARAMS %d\n", U, m->nparams);
  sb_printf(&sb, "#define %s_NUM_INPUTS %d\n", U, m->ninputs);
  sb_printf(&sb, "#define %s_NUM_OUTPUTS %d\n", U, m->noutputs);
  int64_t wbytes = 0;
  for (int i = 0; i < m->nparams; i++) wbytes += 4 * ir_shape_numel(m->params[i].shape, 1);
  sb_printf(&sb,
            "/* Total bytes of all parameters. An arena of ARENA_BYTES + WEIGHTS_BYTES bytes\n"
            " * lets init copy tensors of a blob that is not 4-byte aligned in memory. */\n"
            "#define %s_WEIGHTS_BYTES ((size_t)%lld)\n\n",
            U, (long long)wbytes);
  /* Both are below 2^49 (gat_limits.h), exact in 64 bits; where size_t is
   * narrower the build fails here instead of wrapping the sizes. */
  if (m->arena_bytes + wbytes > (int64_t)UINT32_MAX)
    sb_printf(&sb,
              "#if SIZE_MAX < %lldu\n"
              "#error \"%s needs %lld bytes of arena and weights, more than size_t holds here\"\n"
              "#endif\n\n",
              (long long)(m->arena_bytes + wbytes), N, (long long)(m->arena_bytes + wbytes));
  sb_printf(&sb,
            "/* One model instance. Treat as opaque; two instances share nothing. */\n"
            "typedef struct %s {\n"
            "  unsigned char *arena; /* scratch and persistent state (scan, conv tails, KV caches) */\n"
            "  const void *w[%d];     /* one pointer per parameter, into the weights blob */\n"
            "  int64_t pos;          /* tokens consumed since init/reset */\n"
            "  int32_t ready;\n"
            "  gat_error err;        /* status and message of the last call */\n",
            N, m->nparams > 0 ? m->nparams : 1);
  emit_count_field(&sb, m);
  emit_knobs_field(&sb, m);
  sb_printf(&sb, "} %s;\n\n", N);
  sb_printf(&sb,
            "/* Tensor tables: name, dtype (GAT_F32/GAT_I32), rank, dims (-1 = T). */\n"
            "extern const gat_tensor_spec %s_params[%d];\n"
            "extern const gat_tensor_spec %s_inputs[%d];\n"
            "extern const gat_tensor_spec %s_outputs[%d];\n\n",
            N, m->nparams > 0 ? m->nparams : 1, N, m->ninputs > 0 ? m->ninputs : 1, N,
            m->noutputs > 0 ? m->noutputs : 1);
  sb_printf(&sb,
            "int %s_init(%s *m, void *arena, size_t arena_len, const void *weights, size_t weights_len);\n",
            N, N);
  sb_printf(&sb,
            "/* Binds weights you already hold in memory, one pointer per entry of\n"
            " * %s_params (same order, 4-byte aligned, the exact dtype and shape). */\n"
            "int %s_init_tensors(%s *m, void *arena, size_t arena_len, const void *const *tensors);\n",
            N, N, N);
  sb_printf(&sb,
            "/* Weights compiled into the program: defined in %s_weights.c, written by\n"
            " * `gattnc FILE.gat -o %s.c --embed-weights W.safetensors`. */\n"
            "int %s_init_embedded(%s *m, void *arena, size_t arena_len);\n",
            N, N, N, N);
  sb_printf(&sb, "int %s_forward(%s *m", N, N);
  for (int i = 0; i < m->ninputs; i++) {
    sb_printf(&sb, ", const %s *", emit_c_ctype(m->inputs[i].dtype));
    emit_c_param_ident(&sb, m->inputs[i].name);
  }
  sb_append(&sb, ", int32_t T");
  for (int i = 0; i < m->noutputs; i++) {
    sb_printf(&sb, ", %s *", emit_c_ctype(m->outputs[i].dtype));
    emit_c_param_ident(&sb, m->outputs[i].name);
  }
  sb_append(&sb, ");\n");
  sb_printf(&sb, "int %s_reset(%s *m);\n", N, N);
  sb_printf(&sb, "int %s_status(const %s *m);\n", N, N);
  sb_printf(&sb, "const char *%s_message(const %s *m);\n", N, N);
  sb_printf(&sb, "int64_t %s_position(const %s *m);\n", N, N);
  sb_printf(&sb, "size_t %s_sizeof(void); /* sizeof(%s), for FFI callers */\n", N, N);
  sb_printf(&sb, "size_t %s_arena_bytes(void);\n\n", N);
  emit_count_decls(&sb, m);
  emit_knobs_decls(&sb, m);
  sb_append(&sb, "#ifdef __cplusplus\n}\n#endif\n\n#endif\n");
  size_t w = fwrite(sb_cstr(&sb), 1, sb.len, out);
  int ok = w == sb.len;
  sb_free(&sb);
  sb_free(&up);
  return ok ? 0 : -1;
}
