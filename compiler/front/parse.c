/* parse.c — parse_source: runs the scanner (grammar/lexer.l) and parser
 * (grammar/parser.y) over one source text and returns the AST. The text is
 * registered with diag first so that every error can show its line. */
#include <stdlib.h>
#include <string.h>

#include "ast.h"
#include "parser.h"
/* flex's bison bridge names the value/location types without our prefix. */
#define YYSTYPE GAT_YYSTYPE
#define YYLTYPE GAT_YYLTYPE
#include "lexer.h"

AstFile *parse_source(Arena *a, const char *display_name, const char *text) {
  GAT_ASSERT(a && display_name);
  if (!text) text = "";
  int file = diag_add_file(display_name, text);

  AstFile *f = ARENA_NEW(a, AstFile);
  f->path = arena_strdup(a, display_name);
  f->file_id = file;

  ParseState ps;
  memset(&ps, 0, sizeof ps);
  ps.arena = a;
  ps.file = file;
  ps.text = text;
  ps.line = 1;
  ps.col = 1;
  ps.result = f;

  yyscan_t scanner;
  if (gat_yylex_init_extra(&ps, &scanner) != 0) gat_internal_error(__FILE__, __LINE__, "cannot create the scanner");
  YY_BUFFER_STATE buf = gat_yy_scan_bytes(text, (int)strlen(text), scanner);
  int rc = gat_yyparse(scanner, &ps);
  gat_yy_delete_buffer(buf, scanner);
  gat_yylex_destroy(scanner);
  free(ps.opens);
  /* rc == 1 (gave up after errors) still leaves the declarations parsed so
   * far in f; only running out of memory (rc == 2) leaves nothing usable. */
  return rc == 2 ? NULL : f;
}
