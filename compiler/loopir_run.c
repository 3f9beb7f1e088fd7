/* loopir_run.c — run_compiled (backend.h): the compiled path of `gattnc run`
 * and of the backend tests. The module is emitted as C into a temporary
 * directory, compiled with the system compiler into a shared object together
 * with the runtime sources, loaded with dlopen, and its typed forward entry
 * point is called through libffi with the signature the module declares
 * (inputs, T, outputs in m->inputs / m->outputs order). Weights travel as an
 * in-memory safetensors blob, so the compiled model's own binding checks
 * (missing, unexpected, dtype, shape) are what the user sees.
 * Set GAT_KEEP_TMP=1 to keep the temporary directory for inspection. Under
 * a sanitizer build the model is compiled with the sanitizers as well. */
#include <dlfcn.h>
#include <errno.h>
#include <ffi.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "emit_c.h"

#ifndef GAT_RUNTIME_DIR
#define GAT_RUNTIME_DIR "runtime"
#endif

#define RUN_NAME "gatm"

/* Compile cache: when GATTNC_CACHE_DIR is set, the shared object built from a
 * given generated C file, compiler command and runtime is kept there under a
 * hash of all three, so running the same model again (prefill then decode,
 * several sequence lengths: the test suite does this constantly) skips the C
 * compiler. Entries are written to a temporary name and renamed into place, so
 * concurrent runs never see half a file. */
static uint64_t run_fnv1a(uint64_t h, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211ull;
  }
  return h;
}
static uint64_t run_hash_file(uint64_t h, const char *path) {
  size_t n = 0;
  char *text = read_file(path, &n);
  if (!text) return run_fnv1a(h, path, strlen(path));
  h = run_fnv1a(h, text, n);
  free(text);
  return h;
}
/* Fills `out` with the cache path of this build, or returns 0 if caching is off. */
static int run_cache_path(const char *dir, const char *cmd, StrBuf *out) {
  const char *cache = getenv("GATTNC_CACHE_DIR");
  if (!cache || !*cache) return 0;
  if (mkdir(cache, 0755) != 0 && errno != EEXIST) return 0;
  StrBuf p = {0};
  uint64_t h = 14695981039346656037ull;
  sb_printf(&p, "%s/%s.c", dir, RUN_NAME);
  h = run_hash_file(h, sb_cstr(&p));
  p.len = 0;
  sb_printf(&p, "%s/%s.h", dir, RUN_NAME);
  h = run_hash_file(h, sb_cstr(&p));
  sb_free(&p);
  /* the command without the temporary directory's name */
  for (const char *s = cmd; *s; s++)
    if (strncmp(s, dir, strlen(dir)) == 0) s += strlen(dir) - 1;
    else h = run_fnv1a(h, s, 1);
  h = run_hash_file(h, GAT_RUNTIME_DIR "/gat_runtime.c");
  h = run_hash_file(h, GAT_RUNTIME_DIR "/gat_safetensors.c");
  h = run_hash_file(h, GAT_RUNTIME_DIR "/gat_runtime.h");
  sb_printf(out, "%s/%016llx.so", cache, (unsigned long long)h);
  return 1;
}

/* A host built with AddressSanitizer (cmake -DGAT_SANITIZE=ON) compiles the
 * model with the same sanitizers, so the generated code is checked too. The
 * shared object leaves the ASan/UBSan runtimes undefined and takes them from
 * the host, which already has them loaded (gcc links them dynamically); a
 * plain host keeps a plain -O2 build, since an ASan object needs the ASan
 * runtime loaded first. */
#if defined(__SANITIZE_ADDRESS__)
#define RUN_SANITIZE 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RUN_SANITIZE 1
#endif
#endif
#ifdef RUN_SANITIZE
#define RUN_CFLAGS "-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
#else
#define RUN_CFLAGS "-O2"
#endif

typedef int (*run_init_fn)(void *, void *, size_t, const void *, size_t);
typedef size_t (*run_size_fn)(void);
typedef const char *(*run_msg_fn)(const void *);

/* A safetensors blob of every tensor in s (header padded to 8 bytes). */
static unsigned char *make_blob(const TensorSet *s, size_t *len) {
  StrBuf h = {0};
  size_t off = 0;
  sb_append(&h, "{");
  for (int i = 0; i < s->n; i++) {
    const Tensor *t = &s->t[i];
    size_t nb = (size_t)tensor_numel(t) * 4;
    sb_append(&h, i ? "," : "");
    emit_c_string_literal(&h, t->name); /* a C literal of ASCII names is valid JSON */
    sb_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", t->dtype == IR_F32 ? "F32" : "I32");
    for (int d = 0; d < t->rank; d++) sb_printf(&h, "%s%lld", d ? "," : "", (long long)t->dims[d]);
    sb_printf(&h, "],\"data_offsets\":[%zu,%zu]}", off, off + nb);
    off += nb;
  }
  sb_append(&h, "}");
  while ((h.len + 8) % 8) sb_append(&h, " ");
  *len = 8 + h.len + off;
  unsigned char *b = xmalloc(*len ? *len : 1);
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
  memcpy(b + 8, h.data, h.len);
  off = 8 + h.len;
  for (int i = 0; i < s->n; i++) {
    size_t nb = (size_t)tensor_numel(&s->t[i]) * 4;
    if (nb) memcpy(b + off, s->t[i].data, nb);
    off += nb;
  }
  sb_free(&h);
  return b;
}

/* run --count FILE: the counters of a --count build as JSON, in the format of
 * the interpreter's GAT_INTERP_COUNT (plus the calls of every region), so a
 * test reads both the same way. Returns 0, or -1 with err set. */
typedef int (*run_cnt_n_fn)(void);
typedef int (*run_cnt_int_fn)(int);
typedef const char *(*run_cnt_str_fn)(int);
typedef uint64_t (*run_cnt_tok_fn)(const void *, int);
typedef uint64_t (*run_cnt_reg_fn)(const void *, int, int);
static int run_write_counts(void *so, const void *model, const char *path, char *err, size_t errlen) {
  run_cnt_n_fn f_nops = (run_cnt_n_fn)dlsym(so, RUN_NAME "_count_ops");
  run_cnt_str_fn f_kind = (run_cnt_str_fn)dlsym(so, RUN_NAME "_count_kind");
  run_cnt_str_fn f_origin = (run_cnt_str_fn)dlsym(so, RUN_NAME "_count_origin");
  run_cnt_int_fn f_line = (run_cnt_int_fn)dlsym(so, RUN_NAME "_count_line");
  run_cnt_int_fn f_col = (run_cnt_int_fn)dlsym(so, RUN_NAME "_count_col");
  run_cnt_int_fn f_regions = (run_cnt_int_fn)dlsym(so, RUN_NAME "_count_regions");
  run_cnt_tok_fn f_tokens = (run_cnt_tok_fn)dlsym(so, RUN_NAME "_count_tokens");
  run_cnt_reg_fn f_rows = (run_cnt_reg_fn)dlsym(so, RUN_NAME "_count_rows");
  run_cnt_reg_fn f_calls = (run_cnt_reg_fn)dlsym(so, RUN_NAME "_count_calls");
  if (!f_nops || !f_kind || !f_origin || !f_line || !f_col || !f_regions || !f_tokens || !f_rows || !f_calls) {
    snprintf(err, errlen, "the compiled model has no execution counters (not a --count build)");
    return -1;
  }
  FILE *f = fopen(path, "w");
  if (!f) {
    snprintf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
    return -1;
  }
  int nops = f_nops();
  fprintf(f, "{\"ops\": [");
  for (int i = 0; i < nops; i++) {
    int mix = strcmp(f_kind(i), "mixture") == 0;
    fprintf(f, "%s\n  {\"kind\": \"%s\", \"line\": %d, \"col\": %d, \"origin\": \"%s\", \"tokens\": %llu, ",
            i ? "," : "", f_kind(i), f_line(i), f_col(i), f_origin(i), (unsigned long long)f_tokens(model, i));
    if (mix) {
      fprintf(f, "\"experts\": [");
      for (int e = 0; e < f_regions(i); e++)
        fprintf(f, "%s%llu", e ? ", " : "", (unsigned long long)f_rows(model, i, e));
      fprintf(f, "], \"calls\": [");
      for (int e = 0; e < f_regions(i); e++)
        fprintf(f, "%s%llu", e ? ", " : "", (unsigned long long)f_calls(model, i, e));
      fprintf(f, "]}");
    } else {
      fprintf(f, "\"rows\": %llu, \"calls\": %llu}", (unsigned long long)f_rows(model, i, 0),
              (unsigned long long)f_calls(model, i, 0));
    }
  }
  fprintf(f, "\n]}\n");
  if (fclose(f) != 0) {
    snprintf(err, errlen, "cannot write '%s'", path);
    return -1;
  }
  return 0;
}

static int t_axis(IrShape s) {
  for (int i = 0; i < s.rank; i++)
    if (s.dims[i] == IR_DIM_T) return i;
  return -1;
}

/* Copies rows [t0, t0+n) along `axis` between a [.., Tsrc, ..] and a [.., Tdst, ..] tensor. */
static void copy_t_slice(char *dst, int64_t dst_T, int64_t dst_t0, const char *src, int64_t src_T, int64_t src_t0,
                         int64_t n, IrShape s, int axis) {
  int64_t outer = 1, inner = 4;
  for (int i = 0; i < axis; i++) outer *= s.dims[i];
  for (int i = axis + 1; i < s.rank; i++) inner *= s.dims[i];
  for (int64_t o = 0; o < outer; o++)
    memcpy(dst + ((o * dst_T + dst_t0) * inner), src + ((o * src_T + src_t0) * inner), (size_t)(n * inner));
}

int run_compiled(const IrModule *m, const TensorSet *weights, const TensorSet *inputs, int step,
                 TensorSet *outputs, char *err, size_t errlen) {
  return run_compiled_opt(m, weights, inputs, step, NULL, outputs, err, errlen);
}

int run_compiled_opt(const IrModule *m, const TensorSet *weights, const TensorSet *inputs, int step,
                     const PassOptions *po, TensorSet *outputs, char *err, size_t errlen) {
  char dir[] = "/tmp/gattnc-run-XXXXXX";
  StrBuf path = {0}, cmd = {0};
  void *so = NULL, *model = NULL, *arena = NULL;
  unsigned char *blob = NULL;
  void **in_bufs = NULL, **out_bufs = NULL;
  int rc = -1, nin = m->inputs.len, nout = m->outputs.len;
  const Tensor **in_t = xcalloc((size_t)nin + 1, sizeof *in_t);

  /* inputs: by name, one T for all */
  int64_t T = -1;
  for (int i = 0; i < nin; i++) {
    const IrIO *io = m->inputs.data[i];
    const Tensor *t = tensorset_find(inputs, io->name);
    if (!t) {
      snprintf(err, errlen, "input '%s' is missing", io->name);
      goto done;
    }
    if (t->dtype != io->dtype || t->rank != io->shape.rank) {
      snprintf(err, errlen, "input '%s' has the wrong dtype or rank", io->name);
      goto done;
    }
    for (int d = 0; d < t->rank; d++) {
      if (io->shape.dims[d] == IR_DIM_T) {
        if (T >= 0 && T != t->dims[d]) {
          snprintf(err, errlen, "input '%s': T = %lld but another input has T = %lld", io->name,
                   (long long)t->dims[d], (long long)T);
          goto done;
        }
        T = t->dims[d];
      } else if (io->shape.dims[d] != t->dims[d]) {
        snprintf(err, errlen, "input '%s' has dim %d = %lld, expected %lld", io->name, d, (long long)t->dims[d],
                 (long long)io->shape.dims[d]);
        goto done;
      }
    }
    in_t[i] = t;
  }
  if (T < 0) T = 1;
  if (T > INT32_MAX) {
    snprintf(err, errlen, "T = %lld does not fit the forward signature", (long long)T);
    goto done;
  }

  /* emit + compile + load */
  if (!mkdtemp(dir)) {
    snprintf(err, errlen, "cannot create a temporary directory");
    goto done;
  }
  sb_printf(&path, "%s/%s.c", dir, RUN_NAME);
  if (backend_emit_c_opt(m, sb_cstr(&path), po, err, errlen) != 0) goto done;
#ifdef RUN_SANITIZE
  /* sanitizer flags, plus the -march the chosen --target's kernels need */
  char sanflags[400];
  const char *march = strstr(backend_cflags(po), "-march=");
  snprintf(sanflags, sizeof sanflags, "%s %s", RUN_CFLAGS, march ? march : "");
  const char *cflags = sanflags;
#else
  const char *cflags = backend_cflags(po);
#endif
  sb_printf(&cmd,
            "%s -std=c11 %s -shared -fPIC -I'%s' -I'%s' '%s/%s.c' '%s/gat_runtime.c' '%s/gat_safetensors.c' "
            "-o '%s/%s.so' -lm > '%s/cc.log' 2>&1",
            backend_cc(), cflags, GAT_RUNTIME_DIR, dir, dir, RUN_NAME, GAT_RUNTIME_DIR, GAT_RUNTIME_DIR, dir, RUN_NAME,
            dir);
  StrBuf cached = {0};
  int use_cache = run_cache_path(dir, sb_cstr(&cmd), &cached);
  if (use_cache && access(sb_cstr(&cached), R_OK) == 0) {
    path.len = 0;
    sb_append(&path, sb_cstr(&cached));
  } else {
    if (system(sb_cstr(&cmd)) != 0) {
      snprintf(err, errlen, "compiling the generated C failed (see %s/cc.log)", dir);
      setenv("GAT_KEEP_TMP", "1", 0);
      sb_free(&cached);
      goto done;
    }
    path.len = 0;
    sb_printf(&path, "%s/%s.so", dir, RUN_NAME);
    if (use_cache) {
      StrBuf tmp = {0}, cp = {0};
      sb_printf(&tmp, "%s.%ld.tmp", sb_cstr(&cached), (long)getpid());
      sb_printf(&cp, "cp '%s' '%s'", sb_cstr(&path), sb_cstr(&tmp));
      if (system(sb_cstr(&cp)) == 0 && rename(sb_cstr(&tmp), sb_cstr(&cached)) != 0) remove(sb_cstr(&tmp));
      sb_free(&tmp);
      sb_free(&cp);
    }
  }
  sb_free(&cached);
  so = dlopen(sb_cstr(&path), RTLD_NOW | RTLD_LOCAL);
  if (!so) {
    snprintf(err, errlen, "dlopen: %s", dlerror());
    goto done;
  }
  run_size_fn f_size = (run_size_fn)dlsym(so, RUN_NAME "_sizeof");
  run_size_fn f_arena = (run_size_fn)dlsym(so, RUN_NAME "_arena_bytes");
  run_init_fn f_init = (run_init_fn)dlsym(so, RUN_NAME "_init");
  run_msg_fn f_msg = (run_msg_fn)dlsym(so, RUN_NAME "_message");
  void *f_forward = dlsym(so, RUN_NAME "_forward");
  if (!f_size || !f_arena || !f_init || !f_msg || !f_forward) {
    snprintf(err, errlen, "the compiled model lacks its entry points");
    goto done;
  }

  /* init */
  size_t blob_len;
  blob = make_blob(weights, &blob_len);
  model = xcalloc(1, f_size());
  size_t ab = (f_arena() + 63) & ~(size_t)63;
  arena = aligned_alloc(64, ab ? ab : 64);
  if (!arena) {
    snprintf(err, errlen, "out of memory for a %zu-byte arena", ab);
    goto done;
  }
  if (f_init(model, arena, ab, blob, blob_len) != 0) {
    snprintf(err, errlen, "%s", f_msg(model));
    goto done;
  }

  /* outputs, full length */
  out_bufs = xcalloc((size_t)nout + 1, sizeof *out_bufs);
  in_bufs = xcalloc((size_t)nin + 1, sizeof *in_bufs);
  int first_out = outputs->n;
  for (int i = 0; i < nout; i++) {
    const IrIO *io = m->outputs.data[i];
    int64_t dims[IR_MAX_RANK];
    for (int d = 0; d < io->shape.rank; d++) dims[d] = io->shape.dims[d] == IR_DIM_T ? T : io->shape.dims[d];
    tensorset_add(outputs, io->name, io->dtype, io->shape.rank, dims);
  }

  /* forward calls through libffi: (model, inputs..., int32 T, outputs...) */
  int nargs = 1 + nin + 1 + nout;
  ffi_type **types = xcalloc((size_t)nargs, sizeof *types);
  void **values = xcalloc((size_t)nargs, sizeof *values);
  void **ptrs = xcalloc((size_t)nargs, sizeof *ptrs);
  int32_t Tc = 0;
  ffi_cif cif;
  for (int i = 0; i < nargs; i++) types[i] = &ffi_type_pointer;
  types[1 + nin] = &ffi_type_sint32;
  if (ffi_prep_cif(&cif, FFI_DEFAULT_ABI, (unsigned)nargs, &ffi_type_sint, types) != FFI_OK) {
    snprintf(err, errlen, "ffi_prep_cif failed");
    free(types), free(values), free(ptrs);
    goto done;
  }
  int64_t chunk = step > 0 ? step : T;
  int ok = 1;
  for (int64_t t0 = 0; t0 < T && ok; t0 += chunk) {
    int64_t n = T - t0 < chunk ? T - t0 : chunk;
    Tc = (int32_t)n;
    for (int i = 0; i < nin; i++) {
      const IrIO *io = m->inputs.data[i];
      int ax = t_axis(io->shape);
      free(in_bufs[i]);
      size_t nb = (size_t)ir_shape_numel(io->shape, n) * 4;
      in_bufs[i] = xmalloc(nb ? nb : 4);
      if (ax < 0)
        memcpy(in_bufs[i], in_t[i]->data, nb);
      else
        copy_t_slice(in_bufs[i], n, 0, in_t[i]->data, T, t0, n, io->shape, ax);
      ptrs[1 + i] = in_bufs[i];
    }
    for (int i = 0; i < nout; i++) {
      const IrIO *io = m->outputs.data[i];
      free(out_bufs[i]);
      size_t nb = (size_t)ir_shape_numel(io->shape, n) * 4;
      out_bufs[i] = xcalloc(1, nb ? nb : 4);
      ptrs[2 + nin + i] = out_bufs[i];
    }
    ptrs[0] = model;
    for (int i = 0; i < nargs; i++) values[i] = &ptrs[i];
    values[1 + nin] = &Tc;
    ffi_sarg result = 0;
    ffi_call(&cif, FFI_FN(f_forward), &result, values);
    if ((int)result != 0) {
      snprintf(err, errlen, "%s", f_msg(model));
      ok = 0;
      break;
    }
    for (int i = 0; i < nout; i++) {
      const IrIO *io = m->outputs.data[i];
      Tensor *o = &outputs->t[first_out + i];
      int ax = t_axis(io->shape);
      if (ax < 0)
        memcpy(o->data, out_bufs[i], (size_t)ir_shape_numel(io->shape, n) * 4);
      else
        copy_t_slice(o->data, T, t0, out_bufs[i], n, 0, n, io->shape, ax);
    }
  }
  free(types);
  free(values);
  free(ptrs);
  if (ok && po && po->count_path && run_write_counts(so, model, po->count_path, err, errlen) != 0) ok = 0;
  if (ok) rc = 0;

done:
  if (in_bufs)
    for (int i = 0; i < nin; i++) free(in_bufs[i]);
  if (out_bufs)
    for (int i = 0; i < nout; i++) free(out_bufs[i]);
  free(in_bufs);
  free(out_bufs);
  free(in_t);
  free(model);
  free(arena);
  free(blob);
  if (so) dlclose(so);
  if (dir[strlen(dir) - 1] != 'X' && !getenv("GAT_KEEP_TMP")) {
    cmd.len = 0;
    sb_printf(&cmd, "rm -rf '%s'", dir);
    if (system(sb_cstr(&cmd)) != 0) { /* leftover temp dir: harmless */
    }
  }
  sb_free(&path);
  sb_free(&cmd);
  return rc;
}
