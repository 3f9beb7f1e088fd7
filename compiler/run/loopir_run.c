/* loopir_run.c — run_compiled (backend.h): the compiled path of `gattnc run`
 * and of the backend tests. The module is emitted as C into a temporary
 * directory, compiled with the system compiler into a shared object together
 * with the runtime sources, loaded with dlopen, and its typed forward entry
 * point is called through libffi with the signature the module declares
 * (inputs, T, outputs in m->inputs / m->outputs order; the harness in
 * loopir_ffi.c, shared with the LLVM JIT). Weights travel as an
 * in-memory safetensors blob, so the compiled model's own binding checks
 * (missing, unexpected, dtype, shape) are what the user sees.
 * Set GAT_KEEP_TMP=1 to keep the temporary directory for inspection. Under
 * a sanitizer build the model is compiled with the sanitizers as well. */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "backend_llvm.h"
#include "emit_c.h"
#include "ir_knobs.h"
#include "loopir_ffi.h"

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
static int run_cache_path(const char *dir, const char *src_ext, const char *cmd, StrBuf *out) {
  const char *cache = getenv("GATTNC_CACHE_DIR");
  if (!cache || !*cache) return 0;
  if (mkdir(cache, 0755) != 0 && errno != EEXIST) return 0;
  StrBuf p = {0};
  uint64_t h = 14695981039346656037ull;
  sb_printf(&p, "%s/%s.%s", dir, RUN_NAME, src_ext); /* the generated C, or the LLVM object */
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

/* The runtime's two files take ~90% of a model build's C compile time and
 * never change between models, so with the cache on they are compiled once per
 * (compiler, flags, runtime sources) into objects kept in the cache directory,
 * and each model build only compiles its own generated file and links. Fills
 * `objs` with the two quoted object paths, or leaves it empty (caching off or
 * the compile failed: the caller then compiles the sources as before). */
static void run_runtime_objects(const char *dir, const char *cflags, StrBuf *objs) {
  const char *cache = getenv("GATTNC_CACHE_DIR");
  if (!cache || !*cache) return;
  if (mkdir(cache, 0755) != 0 && errno != EEXIST) return;
  static const char *const files[2] = {"gat_runtime", "gat_safetensors"};
  uint64_t h = 14695981039346656037ull;
  h = run_fnv1a(h, backend_cc(), strlen(backend_cc()));
  h = run_fnv1a(h, cflags, strlen(cflags));
  h = run_hash_file(h, GAT_RUNTIME_DIR "/gat_runtime.c");
  h = run_hash_file(h, GAT_RUNTIME_DIR "/gat_safetensors.c");
  h = run_hash_file(h, GAT_RUNTIME_DIR "/gat_runtime.h");
  StrBuf out = {0}, cmd = {0}, tmp = {0};
  for (int i = 0; i < 2; i++) {
    StrBuf obj = {0};
    sb_printf(&obj, "%s/rt-%016llx-%s.o", cache, (unsigned long long)h, files[i]);
    if (access(sb_cstr(&obj), R_OK) != 0) {
      cmd.len = tmp.len = 0;
      sb_printf(&tmp, "%s.%ld.tmp", sb_cstr(&obj), (long)getpid());
      sb_printf(&cmd, "%s -std=c11 %s -fPIC -c -I'%s' '%s/%s.c' -o '%s' > '%s/cc-%s.log' 2>&1", backend_cc(), cflags,
                GAT_RUNTIME_DIR, GAT_RUNTIME_DIR, files[i], sb_cstr(&tmp), dir, files[i]);
      if (system(sb_cstr(&cmd)) != 0 || rename(sb_cstr(&tmp), sb_cstr(&obj)) != 0) {
        remove(sb_cstr(&tmp));
        sb_free(&obj);
        out.len = 0;
        break;
      }
    }
    sb_printf(&out, " '%s'", sb_cstr(&obj));
    sb_free(&obj);
  }
  if (out.len) sb_append(objs, sb_cstr(&out));
  sb_free(&out);
  sb_free(&cmd);
  sb_free(&tmp);
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


/* the model's NAME_skip_* functions (run --count FILE: loopir_ffi_write_counts) */
typedef int (*run_cnt_n_fn)(void);
typedef const char *(*run_cnt_str_fn)(int);
/* run --set KEY[:I]=V on compiled C: through the model's own setters
 * (codegen/c/emit_knobs.h), as a program using the generated code would. */
typedef int (*run_knob_set_fn)(void *, int, double);
typedef const char *(*run_knob_msg_fn)(const void *);
typedef struct RunKnobs {
  void *so;
  const PassOptions *po;
} RunKnobs;
static int run_set_knobs(void *model, void *ud, char *err, size_t errlen) {
  void *so = ((RunKnobs *)ud)->so;
  const PassOptions *po = ((RunKnobs *)ud)->po;
  run_cnt_n_fn f_n = (run_cnt_n_fn)dlsym(so, RUN_NAME "_skip_ops");
  run_cnt_str_fn f_kind = (run_cnt_str_fn)dlsym(so, RUN_NAME "_skip_kind");
  run_knob_set_fn f_tau = (run_knob_set_fn)dlsym(so, RUN_NAME "_set_skip_threshold");
  run_knob_set_fn f_cap = (run_knob_set_fn)dlsym(so, RUN_NAME "_set_route_capacity");
  run_knob_msg_fn f_msg = (run_knob_msg_fn)dlsym(so, RUN_NAME "_message");
  if (!f_n || !f_kind || !f_tau || !f_cap || !f_msg) {
    snprintf(err, errlen, "the compiled model has no run-time skip knobs");
    return -1;
  }
  int n = f_n();
  for (int s = 0; s < po->nknob_sets; s++) {
    IrKnob k;
    if (ir_knob_parse(po->knob_sets[s], &k, err, errlen) < 0) return -1;
    if (k.index >= n) {
      snprintf(err, errlen, "--set %s: the model has %d skip/route statements", po->knob_sets[s], n);
      return -1;
    }
    int applied = 0;
    for (int i = k.index < 0 ? 0 : k.index; i < (k.index < 0 ? n : k.index + 1); i++) {
      const char *kind = f_kind(i);
      int has = k.capacity ? !strncmp(kind, "route", 5) : strcmp(kind, "skip") != 0;
      if (!has && k.index < 0) continue; /* "all": only the statements with this knob */
      if ((k.capacity ? f_cap : f_tau)(model, i, k.value) != 0) {
        snprintf(err, errlen, "--set %s: %s", po->knob_sets[s], f_msg(model));
        return -1;
      }
      applied++;
    }
    if (!applied) {
      snprintf(err, errlen, "--set %s: no skip/route statement has a %s", po->knob_sets[s],
               k.capacity ? "capacity" : "threshold");
      return -1;
    }
  }
  return 0;
}

static void *run_dlsym(void *so, const char *name) { return dlsym(so, name); }

int run_compiled(const IrModule *m, const TensorSet *weights, const TensorSet *inputs, int step,
                 TensorSet *outputs, char *err, size_t errlen) {
  return run_compiled_opt(m, weights, inputs, step, NULL, outputs, err, errlen);
}

int run_compiled_opt(const IrModule *m, const TensorSet *weights, const TensorSet *inputs, int step,
                     const PassOptions *po, TensorSet *outputs, char *err, size_t errlen) {
  char dir[] = "/tmp/gattnc-run-XXXXXX";
  StrBuf path = {0}, cmd = {0};
  void *so = NULL;
  LoopirFfiModel fm;
  memset(&fm, 0, sizeof fm);
  int rc = -1;
  const Tensor **in_t = xcalloc((size_t)m->inputs.len + 1, sizeof *in_t);

  /* inputs: by name, one T for all */
  int64_t T;
  if (loopir_ffi_bind_inputs(m, inputs, in_t, &T, err, errlen) != 0) goto done;

  /* emit + compile + load */
  if (!mkdtemp(dir)) {
    snprintf(err, errlen, "cannot create a temporary directory");
    goto done;
  }
  const char *src_ext = po && po->run_obj ? "o" : "c";
  sb_printf(&path, "%s/%s.%s", dir, RUN_NAME, src_ext);
  if (po && po->run_obj) { /* run --backend=llvm: the LLVM backend's object, the same NAME.h */
#if GAT_HAVE_LLVM
    LlvmEmitOptions eo = {"obj", NULL, po->llvm_cpu};
    if (backend_emit_llvm(m, sb_cstr(&path), &eo, po, err, errlen) != 0) goto done;
#else
    snprintf(err, errlen, "this gattnc was built without the LLVM backend (cmake -DGAT_WITH_LLVM=ON, needs llvm-dev "
                          "14): --backend=llvm is not available");
    goto done;
#endif
  } else if (backend_emit_c_opt(m, sb_cstr(&path), po, err, errlen) != 0) {
    goto done;
  }
#ifdef RUN_SANITIZE
  /* sanitizer flags, plus the -march the chosen --target's kernels need */
  char sanflags[400];
  const char *march = strstr(backend_cflags(po), "-march=");
  snprintf(sanflags, sizeof sanflags, "%s %s", RUN_CFLAGS, march ? march : "");
  const char *cflags = sanflags;
#else
  const char *cflags = backend_cflags(po);
#endif
  StrBuf rtobjs = {0};
  run_runtime_objects(dir, cflags, &rtobjs);
  if (rtobjs.len)
    sb_printf(&cmd, "%s -std=c11 %s -shared -fPIC -I'%s' -I'%s' '%s/%s.%s'%s -o '%s/%s.so' -lm > '%s/cc.log' 2>&1",
              backend_cc(), cflags, GAT_RUNTIME_DIR, dir, dir, RUN_NAME, src_ext, sb_cstr(&rtobjs), dir, RUN_NAME, dir);
  else
    sb_printf(&cmd,
              "%s -std=c11 %s -shared -fPIC -I'%s' -I'%s' '%s/%s.%s' '%s/gat_runtime.c' '%s/gat_safetensors.c' "
              "-o '%s/%s.so' -lm > '%s/cc.log' 2>&1",
              backend_cc(), cflags, GAT_RUNTIME_DIR, dir, dir, RUN_NAME, src_ext, GAT_RUNTIME_DIR, GAT_RUNTIME_DIR, dir,
              RUN_NAME, dir);
  sb_free(&rtobjs);
  StrBuf cached = {0};
  int use_cache = run_cache_path(dir, src_ext, sb_cstr(&cmd), &cached);
  if (use_cache && access(sb_cstr(&cached), R_OK) == 0) {
    path.len = 0;
    sb_append(&path, sb_cstr(&cached));
  } else {
    if (system(sb_cstr(&cmd)) != 0) {
      snprintf(err, errlen, "%s failed (see %s/cc.log)",
               po && po->run_obj ? "linking the LLVM object" : "compiling the generated C", dir);
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
  fm.f_size = (size_t(*)(void))dlsym(so, RUN_NAME "_sizeof");
  fm.f_arena = (size_t(*)(void))dlsym(so, RUN_NAME "_arena_bytes");
  fm.f_init = (int (*)(void *, void *, size_t, const void *, size_t))dlsym(so, RUN_NAME "_init");
  fm.f_msg = (const char *(*)(const void *))dlsym(so, RUN_NAME "_message");
  fm.f_forward = dlsym(so, RUN_NAME "_forward");
  if (!fm.f_size || !fm.f_arena || !fm.f_init || !fm.f_msg || !fm.f_forward) {
    snprintf(err, errlen, "the compiled model lacks its entry points");
    goto done;
  }

  /* init, then forward calls through libffi (loopir_ffi.c) */
  RunKnobs knobs = {so, po};
  if (po && po->nknob_sets > 0) fm.after_init = run_set_knobs, fm.after_init_ud = &knobs;
  if (loopir_ffi_call(&fm, m, weights, in_t, T, step, outputs, err, errlen) != 0) goto done;
  if (po && po->count_path &&
      loopir_ffi_write_counts(run_dlsym, so, RUN_NAME, fm.model, po->count_path, err, errlen) != 0)
    goto done;
  rc = 0;

done:
  free(in_t);
  loopir_ffi_release(&fm);
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
