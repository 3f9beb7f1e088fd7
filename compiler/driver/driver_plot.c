/* driver_plot.c — a small, self-contained SVG line plot with logarithmic
 * axes, for `gattnc bench --plot OUT.svg` (prefill time against T at -O0
 * and -O2). No external library: axes, decade grid lines, one polyline with
 * circle markers per series and a legend, all as plain SVG 1.1 elements.
 * Every marker carries data-x / data-y attributes with the exact values so
 * that tests (and people) can read the points back. */
#include <math.h>
#include <stdio.h>

#include "driver.h"

#define PLOT_W 720.0
#define PLOT_H 480.0
#define PLOT_L 80.0 /* margins: room for tick labels and titles */
#define PLOT_R 150.0
#define PLOT_T 50.0
#define PLOT_B 60.0

static const char *const plot_colors[] = {"#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"};

/* XML text: escapes the five special characters */
static void plot_text(FILE *f, const char *s) {
  for (; s && *s; s++) {
    switch (*s) {
    case '<': fputs("&lt;", f); break;
    case '>': fputs("&gt;", f); break;
    case '&': fputs("&amp;", f); break;
    case '"': fputs("&quot;", f); break;
    case '\'': fputs("&apos;", f); break;
    default: fputc(*s, f);
    }
  }
}

/* log10 range [lo, hi] covering all positive values, widened to whole decades */
static void plot_range(int n, const int *npts, const double *const *v, double *lo, double *hi) {
  double mn = INFINITY, mx = -INFINITY;
  for (int s = 0; s < n; s++)
    for (int i = 0; i < npts[s]; i++)
      if (v[s][i] > 0) {
        if (log10(v[s][i]) < mn) mn = log10(v[s][i]);
        if (log10(v[s][i]) > mx) mx = log10(v[s][i]);
      }
  if (!(mn <= mx)) mn = 0, mx = 1;
  *lo = floor(mn);
  *hi = ceil(mx);
  if (*hi <= *lo) *hi = *lo + 1;
}

int driver_plot_svg(const char *path, const char *title, const char *xlabel, const char *ylabel, int nseries,
                    const char *const *names, const int *npts, const double *const *x, const double *const *y) {
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  double x0, x1, y0, y1;
  plot_range(nseries, npts, x, &x0, &x1);
  plot_range(nseries, npts, y, &y0, &y1);
  const double pw = PLOT_W - PLOT_L - PLOT_R, ph = PLOT_H - PLOT_T - PLOT_B;
#define PX(v) (PLOT_L + (log10(v) - x0) / (x1 - x0) * pw)
#define PY(v) (PLOT_T + ph - (log10(v) - y0) / (y1 - y0) * ph)
  fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
  fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n",
          PLOT_W, PLOT_H, PLOT_W, PLOT_H);
  fprintf(f, "<title>");
  plot_text(f, title);
  fprintf(f, "</title>\n<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"white\"/>\n", PLOT_W, PLOT_H);
  fprintf(f, "<text x=\"%.1f\" y=\"25\" text-anchor=\"middle\" font-size=\"14\">", PLOT_L + pw / 2);
  plot_text(f, title);
  fprintf(f, "</text>\n");
  /* grid: decades, with 2x and 5x minor lines */
  fprintf(f, "<g stroke=\"#dddddd\" stroke-width=\"1\">\n");
  for (double d = x0; d <= x1 + 1e-9; d++)
    for (int m = 1; m <= 9; m++) {
      double v = pow(10, d) * m;
      if (log10(v) > x1 + 1e-9 || (m != 1 && m != 2 && m != 5)) continue;
      fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", PX(v), PLOT_T, PX(v), PLOT_T + ph);
    }
  for (double d = y0; d <= y1 + 1e-9; d++)
    for (int m = 1; m <= 9; m++) {
      double v = pow(10, d) * m;
      if (log10(v) > y1 + 1e-9 || (m != 1 && m != 2 && m != 5)) continue;
      fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", PLOT_L, PY(v), PLOT_L + pw, PY(v));
    }
  fprintf(f, "</g>\n");
  /* axes and tick labels */
  fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"black\"/>\n", PLOT_L, PLOT_T, pw, ph);
  for (double d = x0; d <= x1 + 1e-9; d++)
    for (int m = 1; m <= 5; m += (m == 1 ? 1 : 3)) {
      double v = pow(10, d) * m;
      if (log10(v) > x1 + 1e-9) continue;
      fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n", PX(v), PLOT_T + ph + 18, v);
    }
  for (double d = y0; d <= y1 + 1e-9; d++)
    for (int m = 1; m <= 5; m += (m == 1 ? 1 : 3)) {
      double v = pow(10, d) * m;
      if (log10(v) > y1 + 1e-9) continue;
      fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", PLOT_L - 6, PY(v) + 4, v);
    }
  fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", PLOT_L + pw / 2, PLOT_H - 15);
  plot_text(f, xlabel);
  fprintf(f, "</text>\n<text x=\"18\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 18 %.1f)\">", PLOT_T + ph / 2,
          PLOT_T + ph / 2);
  plot_text(f, ylabel);
  fprintf(f, "</text>\n");
  /* series */
  for (int s = 0; s < nseries; s++) {
    const char *col = plot_colors[s % 6];
    fprintf(f, "<g class=\"series\" data-name=\"");
    plot_text(f, names[s]);
    fprintf(f, "\">\n<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", col);
    for (int i = 0; i < npts[s]; i++)
      if (x[s][i] > 0 && y[s][i] > 0) fprintf(f, "%s%.1f,%.1f", i ? " " : "", PX(x[s][i]), PY(y[s][i]));
    fprintf(f, "\"/>\n");
    for (int i = 0; i < npts[s]; i++)
      if (x[s][i] > 0 && y[s][i] > 0)
        fprintf(f, "<circle class=\"point\" cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\" data-x=\"%.17g\" data-y=\"%.17g\"/>\n",
                PX(x[s][i]), PY(y[s][i]), col, x[s][i], y[s][i]);
    double ly = PLOT_T + 10 + 20 * s;
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"/>\n", PLOT_L + pw + 12, ly,
            PLOT_L + pw + 36, ly, col);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">", PLOT_L + pw + 42, ly + 4);
    plot_text(f, names[s]);
    fprintf(f, "</text>\n</g>\n");
  }
#undef PX
#undef PY
  fprintf(f, "</svg>\n");
  return fclose(f) == 0 ? 0 : -1;
}
