/* frontend.c — from .gat text to graph IR: parse the main file, follow its
 * imports (`import std` is the library embedded in gattnc, `import "x.gat"`
 * is read relative to the importing file), then hand the files to the
 * elaborating walk (sema.c). Every file is parsed once, however often and
 * however circularly it is imported; imported files come before the files
 * that import them, so their consts are defined first. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "frontend.h"
#include "gat_limits.h"
#include "sema.h"

typedef struct Loader {
  Arena *a;
  PtrVec files; /* AstFile*, in dependency order */
  PtrVec keys;  /* char*: the key of every file loaded or tried (realpath, or "<std>") */
} Loader;

static int loader_seen(Loader *L, const char *key) {
  for (int i = 0; i < L->keys.len; i++)
    if (strcmp(L->keys.data[i], key) == 0) return 1;
  return 0;
}

/* The directory part of a path, with a trailing slash ("" for none). */
static const char *dir_of(Arena *a, const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash) return "";
  return arena_strndup(a, path, (size_t)(slash - path + 1));
}

/* Canonical key of a file: realpath when it exists, else the path as given. */
static const char *file_key(Arena *a, const char *path) {
  char *rp = realpath(path, NULL);
  if (!rp) return arena_strdup(a, path);
  const char *k = arena_strdup(a, rp);
  free(rp);
  return k;
}

static void load_file(Loader *L, const char *key, const char *display, const char *text);

static void load_imports(Loader *L, AstFile *f) {
  for (int i = 0; i < f->decls.len; i++) {
    AstDecl *d = f->decls.items[i];
    if (d->kind != AST_DECL_IMPORT) continue;
    if (!d->import_is_path) {
      if (strcmp(d->name, "std") != 0) {
        diag_error(d->loc, "unknown module '%s' (the built-in one is 'std'; files are imported with "
                           "import \"file.gat\")", d->name);
        continue;
      }
      if (!loader_seen(L, "<std>")) {
        ptrvec_push(&L->keys, "<std>");
        for (const GatStdFile *sf = gat_std_files; sf->name; sf++)
          load_file(L, arena_printf(L->a, "<std>/%s", sf->name), arena_printf(L->a, "std/%s", sf->name),
                    sf->text);
      }
      continue;
    }
    const char *path = d->name[0] == '/' ? d->name : arena_printf(L->a, "%s%s", dir_of(L->a, f->path), d->name);
    const char *key = file_key(L->a, path);
    if (loader_seen(L, key)) continue;
    size_t len;
    char *text = read_file_limit(path, &len, (size_t)GAT_LIMIT_SOURCE_BYTES);
    if (!text) {
      diag_error(d->loc, "cannot read imported file '%s': %s", path,
                 errno == EFBIG ? "a model file may hold at most 256 MiB" : strerror(errno));
      ptrvec_push(&L->keys, (void *)key); /* report once */
      continue;
    }
    load_file(L, key, path, text);
    free(text);
  }
}

static void load_file(Loader *L, const char *key, const char *display, const char *text) {
  ptrvec_push(&L->keys, (void *)key);
  AstFile *f = parse_source(L->a, display, text);
  if (!f) return;
  if (!f->path) f->path = arena_strdup(L->a, display);
  load_imports(L, f);
  ptrvec_push(&L->files, f);
}

IrModule *frontend_compile(Arena *a, const char *path, const char *text, const FrontendOptions *o) {
  Loader L;
  memset(&L, 0, sizeof L);
  L.a = a;
  int errs0 = diag_error_count();
  const char *key = file_key(a, path);
  ptrvec_push(&L.keys, (void *)key);
  AstFile *main_file = parse_source(a, path, text);
  IrModule *m = NULL;
  if (main_file) {
    if (!main_file->path) main_file->path = arena_strdup(a, path);
    load_imports(&L, main_file);
    ptrvec_push(&L.files, main_file);
    /* Syntax errors leave partial trees; checking them would only add noise. */
    if (diag_error_count() == errs0)
      m = sema_lower_program(a, (AstFile *const *)L.files.data, L.files.len, main_file, o);
  }
  ptrvec_free(&L.files);
  ptrvec_free(&L.keys);
  return diag_error_count() > errs0 ? NULL : m;
}
