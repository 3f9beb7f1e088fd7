// test_sema_stream.cc — the streaming contract (compiler/front/sema_stream.c,
// docs/language.md "The streaming contract"): reads of other tokens inside a
// scan step are located errors, legal step reads compile silently, and
// sequence-level operations outside scans give one warning per source place
// without failing the compilation. Expected texts are written from the docs.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

extern "C" {
#include "frontend.h"
#include "ir.h"
}

namespace {

struct Result {
  IrModule *m = nullptr;
  std::string diag;
  int errors = 0;
};

struct ArenaHolder {
  std::vector<Arena *> arenas;
  ~ArenaHolder() {
    for (Arena *a : arenas) {
      arena_free(a);
      delete a;
    }
  }
} g_arenas;

Result compile(const std::string &src) {
  diag_reset();
  char *buf = nullptr;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  diag_set_stream(f);
  Arena *a = new Arena;
  arena_init(a);
  g_arenas.arenas.push_back(a);
  FrontendOptions o = {nullptr, 0};
  Result r;
  r.m = frontend_compile(a, "s.gat", src.c_str(), &o);
  r.errors = diag_error_count();
  fclose(f);
  diag_set_stream(nullptr);
  r.diag.assign(buf, len);
  free(buf);
  return r;
}

// A model with x: f32[T, 4] and y: f32[T, 4] around `body` (which starts on line 4).
std::string model(const std::string &body) {
  return "model m {\n  input x : f32[T, 4]\n  output y : f32[T, 4]\n" + body + "\n}\n";
}
std::string scan_model(const std::string &step) {
  return model("  y = scan t with h: f32[4] = 0 {\n" + step + "\n    emit = h\n  }");
}
int count(const std::string &s, const std::string &what) {
  int n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) n++;
  return n;
}

#define EXPECT_CLEAN(r) \
  do { \
    EXPECT_NE((r).m, nullptr) << (r).diag; \
    EXPECT_EQ((r).diag, ""); \
  } while (0)
#define EXPECT_STREAM_ERROR(r, text) \
  do { \
    EXPECT_EQ((r).m, nullptr); \
    EXPECT_EQ((r).errors, 1) << (r).diag; \
    EXPECT_NE((r).diag.find(text), std::string::npos) << "diagnostics were:\n" << (r).diag; \
    EXPECT_NE((r).diag.find("s.gat:4:7: note: the scan runs once per token"), std::string::npos) << (r).diag; \
  } while (0)

TEST(SemaStream, LegalStepReadsCompileSilently) {
  // the outer T axis at t, a weight, a constant, the state, a value computed in the step
  EXPECT_CLEAN(compile(scan_model("    param w : f32[4] = ones()\n    xt[j] = x[t, j] * w[j]\n"
                                  "    h[j] = 0.5 * h[j] + xt[j] + max(k) x[t, k]")));
  // another scan's output and positions() read at t
  EXPECT_CLEAN(compile(model("  p = positions()\n  u = scan t with h: f32[4] = 0 {\n    h[j] = h[j] + x[t, j]\n"
                             "    emit = h\n  }\n  y = scan t with g: f32[4] = 0 {\n    emit = g\n"
                             "    g[j] = u[t, j] - g[j] + 0.5 * p[t]\n  }")));
}

TEST(SemaStream, ReductionOverTInStep) {
  auto r = compile(scan_model("    h[j] = h[j] + sum(s) x[s, j]"));
  EXPECT_STREAM_ERROR(r, "s.gat:5:28: error: a scan step may read the T axis of x (f32[T, 4]) only at the scan "
                         "variable 't', not over the range of 's'");
}

TEST(SemaStream, OffsetsAndConstantsOnTInStep) {
  EXPECT_STREAM_ERROR(compile(scan_model("    h[j] = x[t - 1, j]")),
                      "s.gat:5:14: error: a scan step may read the T axis of x (f32[T, 4]) only at the scan "
                      "variable 't', not at 't - 1'");
  EXPECT_STREAM_ERROR(compile(scan_model("    h[j] = x[t + 1, j]")), "not at 't + 1'");
  EXPECT_STREAM_ERROR(compile(scan_model("    h[j] = x[0, j]")), "not at '0'");
}

TEST(SemaStream, BuiltinsOverOuterTInStep) {
  EXPECT_STREAM_ERROR(compile(scan_model("    m = softmax(x, axis: 0)\n    h[j] = h[j] + m[t, j]")),
                      "s.gat:5:9: error: a scan step may read the T axis of 'x' (f32[T, 4]) only at the scan "
                      "variable 't', as x[t, ...] in index notation; 'softmax' reads every token of the call");
  EXPECT_STREAM_ERROR(compile(scan_model("    m = mean(x, axis: 0)\n    h[j] = h[j] + m[j]")),
                      "this reduction reads every token of the call");
  EXPECT_STREAM_ERROR(compile(scan_model("    m = x[:, 0:2]\n    h[j] = h[j] + m[t, j]")),
                      "this slice reads every token of the call");
  // emitting an outer tensor would stack the whole call at every step
  EXPECT_STREAM_ERROR(compile(model("  y = scan t with h: f32[4] = 0 {\n    emit = x\n  }")),
                      "s.gat:5:5: error: 'emit' gives 'x' (f32[T, 4]), all the tokens of the call, at every step");
}

TEST(SemaStream, ScanVariableValueAndNestedScan) {
  EXPECT_STREAM_ERROR(compile(scan_model("    h[j] = h[j] + t")),
                      "s.gat:5:19: error: the scan variable 't' can only index the T axis of a tensor");
  EXPECT_STREAM_ERROR(compile(scan_model("    u = scan s with g: f32[4] = 0 {\n      g[j] = g[j] + x[s, j]\n"
                                         "      emit = g\n    }\n    h[j] = u[t, j]")),
                      "s.gat:5:9: error: a scan cannot run inside a scan step");
  EXPECT_STREAM_ERROR(compile(scan_model("    p = positions()\n    h[j] = h[j] + p[t]")),
                      "s.gat:5:9: error: positions() inside a scan step");
}

TEST(SemaStream, SequenceOperationsWarnOncePerPlace) {
  // a layer instantiated three times: one warning, at the layer's line; the exit status stays 0
  auto r = compile("layer centre(x: f32[T, D]) -> f32[T, D] {\n  return x - mean(x, axis: 0, keepdim: true)\n}\n" +
                   model("  y = centre(centre(centre(x)))"));
  EXPECT_NE(r.m, nullptr) << r.diag;
  EXPECT_EQ(r.errors, 0);
  EXPECT_EQ(count(r.diag, "warning:"), 1) << r.diag;
  EXPECT_NE(r.diag.find("s.gat:2:14: warning: a mean over the T axis sees only the tokens of the current call, so "
                        "one call of T tokens and T calls of one token (prefill and decode) give different results\n"
                        "    return x - mean(x, axis: 0, keepdim: true)\n               ^\n"),
            std::string::npos)
      << r.diag;
  // softmax over T, a reduction over T in index notation, a T x T value, the row number as a value
  auto s = compile(model("  a = softmax(x, axis: 0)\n  b[j] = sum(s) x[s, j]\n  c[i, k] = x[i, 0] * x[k, 0]\n"
                         "  d[i, j] = x[i, j] * i\n  y = a + b + d + sum(c, axis: -1, keepdim: true)"));
  EXPECT_NE(s.m, nullptr) << s.diag;
  EXPECT_NE(s.diag.find("s.gat:4:7: warning: softmax over the T axis"), std::string::npos) << s.diag;
  EXPECT_NE(s.diag.find("s.gat:5:10: warning: a reduction over 's', which ranges over T"), std::string::npos) << s.diag;
  EXPECT_NE(s.diag.find("s.gat:6:3: warning: a value with two T axes (f32[T, T]"), std::string::npos) << s.diag;
  EXPECT_NE(s.diag.find("s.gat:7:23: warning: index 'i' ranges over T and is used as a number"), std::string::npos)
      << s.diag;
  EXPECT_NE(s.diag.find("s.gat:8:19: warning: a sum over the T axis"), std::string::npos) << s.diag;
  EXPECT_EQ(count(s.diag, "warning:"), 5) << s.diag;
}

TEST(SemaStream, RouteAndTokenwiseOpsDoNotWarn) {
  // ranking per call is route's definition (docs/language.md "Routes"): no warning
  EXPECT_CLEAN(compile(model("  h = x\n  r = linear(h, 1) @ \"router\"\n"
                             "  h = h + r * linear(h, 4) @ \"block\" route top(0.5 * T, threshold: 0.5) by r\n  y = h")));
  EXPECT_CLEAN(compile(model("  y = softmax(x, axis: -1) + mean(x, axis: -1, keepdim: true)")));
}

}  // namespace
