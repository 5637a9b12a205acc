/*
 * svg.c - the plots of `advctl report`, written as inline SVG: line plots
 * (optionally with bars over x ranges), grouped bar charts and heat maps,
 * each with labelled axes, "nice" ticks and a legend below the plot area
 * that wraps into as many rows as it needs, so that nothing overlaps.
 *
 * Format: one <svg class="plot" data-plot=ID data-series=S data-points=P>
 * per plot, with a viewBox (it scales to its container's width) and a
 * <title>; each series is one <g class="series" data-name=NAME
 * data-points=N> holding its marks (NaN values are gaps and not counted).
 * The tests count these attributes; the page needs no script or font of
 * its own (generic sans-serif). Colours are the Okabe-Ito palette, safe
 * for colour-blind readers; heat maps use a viridis ramp.
 */
#include "client/advctl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define W 600.0
#define PLOT_H 260.0
#define LEFT 62.0
#define RIGHT 16.0
#define TOP 30.0
#define BOTTOM 46.0       /* tick labels and the x label */
#define LEGEND_ROW 18.0
#define CHAR_W 6.6        /* average width of a 12 px sans-serif glyph */

static const char *const palette[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                      "#E69F00", "#56B4E9", "#000000", "#F0E442"};
#define NPALETTE ((int)(sizeof palette / sizeof palette[0]))
static const char *const dashes[] = {"", "6 4", "2 3", "8 3 2 3"};

const char *svg_colour(int i)
{
    return palette[(i % NPALETTE + NPALETTE) % NPALETTE];
}

/* ------------------------------------------------------------ scales */

typedef struct {
    double lo, hi;       /* data range shown */
    double step;         /* tick spacing */
    double p0, p1;       /* pixel range */
} scale;

static double nice_step(double range, int ticks)
{
    double raw = range / ticks, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

/* A scale from lo to hi, widened to whole ticks unless fixed. */
static scale make_scale(double lo, double hi, int fixed, double p0, double p1, int ticks,
                        int integer)
{
    scale s = {lo, hi, 0, p0, p1};
    if (!(hi > lo)) {
        double d = lo != 0 ? fabs(lo) * 0.1 : 1;
        s.lo = lo - d;
        s.hi = hi + d;
    }
    s.step = nice_step(s.hi - s.lo, ticks);
    if (integer && s.step < 1)
        s.step = 1;
    if (!fixed) {
        s.lo = floor(s.lo / s.step + 1e-9) * s.step;
        s.hi = ceil(s.hi / s.step - 1e-9) * s.step;
    }
    return s;
}

static double at(const scale *s, double v)
{
    return s->p0 + (v - s->lo) / (s->hi - s->lo) * (s->p1 - s->p0);
}

/* A tick value with as many decimals as the step needs. */
static void tick_text(double v, double step, char *buf, size_t len)
{
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (fabs(v) < step * 1e-6)
        v = 0;
    if (step < 1e-4 || fabs(v) >= 1e6)
        snprintf(buf, len, "%.2g", v);
    else
        snprintf(buf, len, "%.*f", dec, v);
}

/* -------------------------------------------------------------- text */

static void text_at(FILE *f, double x, double y, const char *anchor, const char *extra,
                    const char *s)
{
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\"%s>", x, y, anchor, extra);
    html_escape(f, s);
    fputs("</text>\n", f);
}

/* ------------------------------------------------------------ legend */

static double legend_width(const char *name)
{
    return 34 + CHAR_W * (double)strlen(name) + 14;
}

static int legend_rows(const svg_series *s, int ns)
{
    double x = LEFT;
    int rows = ns > 0;
    for (int i = 0; i < ns; i++) {
        double w = legend_width(s[i].name);
        if (x + w > W - RIGHT && x > LEFT) {
            rows++;
            x = LEFT;
        }
        x += w;
    }
    return rows;
}

static void swatch(FILE *f, const svg_series *s, double x, double y)
{
    if (s->bar_width > 0 || s->bars)
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"26\" height=\"10\" fill=\"%s\" "
                   "fill-opacity=\"0.75\"/>\n",
                x, y - 9, svg_colour(s->colour));
    if (!s->bars)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                   "stroke-width=\"2.5\" stroke-dasharray=\"%s\"/>\n",
                x, y - 4, x + 26, y - 4, svg_colour(s->colour), dashes[s->dash & 3]);
}

static void legend(FILE *f, const svg_series *s, int ns, double y0)
{
    double x = LEFT, y = y0;
    fputs("<g class=\"legend\">\n", f);
    for (int i = 0; i < ns; i++) {
        double w = legend_width(s[i].name);
        if (x + w > W - RIGHT && x > LEFT) {
            y += LEGEND_ROW;
            x = LEFT;
        }
        swatch(f, &s[i], x, y);
        text_at(f, x + 32, y, "start", "", s[i].name);
        x += w;
    }
    fputs("</g>\n", f);
}

/* ------------------------------------------------------------- frame */

static int count_points(const svg_series *s)
{
    int n = 0;
    for (int i = 0; i < s->n; i++)
        n += isfinite(s->x[i]) && isfinite(s->y[i]);
    return n;
}

static void open_svg(FILE *f, const svg_plot *p, const svg_series *s, int ns, double height)
{
    int points = 0;
    for (int i = 0; i < ns; i++)
        points += count_points(&s[i]);
    fprintf(f, "<figure class=\"plot\"><svg class=\"plot\" "
               "viewBox=\"0 0 %.0f %.0f\" role=\"img\" data-plot=\"",
            W, height);
    html_escape(f, p->id);
    fprintf(f, "\" data-series=\"%d\" data-points=\"%d\">\n<title>", ns, points);
    html_escape(f, p->title);
    fputs("</title>\n", f);
    text_at(f, W / 2, 18, "middle", " class=\"title\"", p->title);
}

static void close_svg(FILE *f, const svg_plot *p)
{
    fputs("</svg>", f);
    if (p->caption) {
        fputs("<figcaption>", f);
        html_escape(f, p->caption);
        fputs("</figcaption>", f);
    }
    fputs("</figure>\n", f);
}

static void y_axis(FILE *f, const svg_plot *p, const scale *y)
{
    char b[32];
    for (double v = y->lo; v <= y->hi + y->step * 1e-6; v += y->step) {
        double py = at(y, v);
        fprintf(f, "<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n",
                LEFT, py, W - RIGHT, py);
        tick_text(v, y->step, b, sizeof b);
        text_at(f, LEFT - 6, py + 4, "end", "", b);
    }
    fprintf(f, "<text x=\"14\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 14 %.1f)\">",
            (TOP + TOP + PLOT_H) / 2, (TOP + TOP + PLOT_H) / 2);
    html_escape(f, p->ylabel);
    fputs("</text>\n", f);
}

static void x_label(FILE *f, const svg_plot *p, double extra)
{
    if (p->xlabel && *p->xlabel)
        text_at(f, (LEFT + W - RIGHT) / 2, TOP + PLOT_H + 38 + extra, "middle", "", p->xlabel);
}

static void x_axis(FILE *f, const svg_plot *p, const scale *x)
{
    char b[32];
    for (double v = x->lo; v <= x->hi + x->step * 1e-6; v += x->step) {
        double px = at(x, v);
        fprintf(f, "<line class=\"tick\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", px,
                TOP + PLOT_H, px, TOP + PLOT_H + 5);
        tick_text(v, x->step, b, sizeof b);
        text_at(f, px, TOP + PLOT_H + 18, "middle", "", b);
    }
    x_label(f, p, 0);
}

static void frame(FILE *f)
{
    fprintf(f, "<rect class=\"frame\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>\n",
            LEFT, TOP, W - RIGHT - LEFT, PLOT_H);
}

static double total_height(const svg_series *s, int ns, double extra)
{
    return TOP + PLOT_H + BOTTOM + extra + LEGEND_ROW * legend_rows(s, ns) + 4;
}

/* ------------------------------------------------------------- lines */

static void data_range(const svg_series *s, int ns, int yaxis, double *lo, double *hi)
{
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int i = 0; i < ns; i++)
        for (int k = 0; k < s[i].n; k++) {
            double v = yaxis ? s[i].y[k] : s[i].x[k];
            if (!isfinite(v) || !isfinite(yaxis ? s[i].x[k] : s[i].y[k]))
                continue;
            double a = v, b = v;
            if (!yaxis && s[i].bar_width > 0)
                a = v - s[i].bar_width / 2, b = v + s[i].bar_width / 2;
            if (yaxis && s[i].bar_width > 0)
                a = fmin(a, 0);
            *lo = fmin(*lo, a);
            *hi = fmax(*hi, b);
        }
    if (!isfinite(*lo))
        *lo = 0, *hi = 1;
}

static scale axis_scale(const svg_series *s, int ns, int yaxis, double lo, double hi, double p0,
                        double p1, int integer)
{
    double dlo, dhi;
    data_range(s, ns, yaxis, &dlo, &dhi);
    int fixed = !isnan(lo) && !isnan(hi);
    return make_scale(isnan(lo) ? dlo : lo, isnan(hi) ? dhi : hi, fixed, p0, p1, yaxis ? 5 : 6,
                      integer);
}

static void series_bars(FILE *f, const svg_series *s, const scale *x, const scale *y)
{
    for (int k = 0; k < s->n; k++) {
        if (!isfinite(s->x[k]) || !isfinite(s->y[k]))
            continue;
        double x0 = at(x, s->x[k] - s->bar_width / 2), x1 = at(x, s->x[k] + s->bar_width / 2);
        double y0 = at(y, fmax(y->lo, 0)), y1 = at(y, s->y[k]);
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" "
                   "fill-opacity=\"0.55\" stroke=\"%s\"/>\n",
                x0 + 0.5, fmin(y0, y1), fmax(x1 - x0 - 1, 0.5), fabs(y0 - y1),
                svg_colour(s->colour), svg_colour(s->colour));
    }
}

static void series_line(FILE *f, const svg_series *s, const scale *x, const scale *y)
{
    const char *c = svg_colour(s->colour);
    int open = 0;
    for (int k = 0; k < s->n; k++) {
        if (!isfinite(s->x[k]) || !isfinite(s->y[k])) {
            if (open)
                fputs("\"/>\n", f);
            open = 0;
            continue;
        }
        if (!open)
            fprintf(f, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"2\" "
                       "stroke-dasharray=\"%s\" d=\"M",
                    c, dashes[s->dash & 3]);
        else
            fputs(" L", f);
        fprintf(f, "%.1f %.1f", at(x, s->x[k]), at(y, s->y[k]));
        open = 1;
    }
    if (open)
        fputs("\"/>\n", f);
    /* Markers while they stay apart (long runs: the line alone). */
    for (int k = 0; k < s->n && count_points(s) <= 60; k++)
        if (isfinite(s->x[k]) && isfinite(s->y[k]))
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.2\" fill=\"%s\"/>\n",
                    at(x, s->x[k]), at(y, s->y[k]), c);
}

static void open_series(FILE *f, const svg_series *s)
{
    fputs("<g class=\"series\" data-name=\"", f);
    html_escape(f, s->name);
    fprintf(f, "\" data-points=\"%d\">\n", count_points(s));
}

void svg_lines(FILE *f, const svg_plot *p, const svg_series *s, int ns)
{
    scale x = axis_scale(s, ns, 0, p->xmin, p->xmax, LEFT, W - RIGHT, p->xinteger);
    scale y = axis_scale(s, ns, 1, p->ymin, p->ymax, TOP + PLOT_H, TOP, 0);
    open_svg(f, p, s, ns, total_height(s, ns, 0));
    y_axis(f, p, &y);
    x_axis(f, p, &x);
    frame(f);
    if (p->diagonal)
        fprintf(f, "<line class=\"ref\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n",
                at(&x, fmax(x.lo, y.lo)), at(&y, fmax(x.lo, y.lo)), at(&x, fmin(x.hi, y.hi)),
                at(&y, fmin(x.hi, y.hi)));
    for (int i = 0; i < ns; i++) {
        open_series(f, &s[i]);
        if (s[i].bar_width > 0)
            series_bars(f, &s[i], &x, &y);
        else
            series_line(f, &s[i], &x, &y);
        fputs("</g>\n", f);
    }
    legend(f, s, ns, TOP + PLOT_H + BOTTOM + 12);
    close_svg(f, p);
}

/* -------------------------------------------------------------- bars */

/* Where a category label breaks into two lines: after its comma, else at
 * the space nearest its middle; len when it has no space. */
static size_t split_point(const char *name)
{
    size_t len = strlen(name), best = len;
    const char *comma = strstr(name, ", ");
    if (comma)
        return (size_t)(comma - name) + 1;
    for (size_t i = 0; i < len; i++)
        if (name[i] == ' ' && (best == len || labs((long)(2 * i) - (long)len) <
                                                   labs((long)(2 * best) - (long)len)))
            best = i;
    return best;
}

/* How category labels fit below the axis: 0 on one line each, 1 broken
 * into two lines, 2 (too long even so) slanted. */
static int label_mode(const char *const *cats, int ncats, double slot, double *extra)
{
    int mode = 0;
    double longest = 0;
    for (int c = 0; c < ncats; c++) {
        size_t len = strlen(cats[c]), at = split_point(cats[c]);
        size_t part = at > len - at ? at : len - at;
        int need = at < len && CHAR_W * (double)part <= slot ? 1 : 2;
        longest = fmax(longest, CHAR_W * (double)len);
        if (CHAR_W * (double)len > slot && need > mode)
            mode = need;
    }
    *extra = mode == 0 ? 0 : mode == 1 ? 13 : longest * 0.5 + 4;
    return mode;
}

static void category_label(FILE *f, double cx, const char *name, int mode)
{
    size_t at = split_point(name);
    if (mode == 0 || (mode == 1 && !name[at])) {
        text_at(f, cx, TOP + PLOT_H + 16, "middle", "", name);
    } else if (mode == 1) {
        char a[128];
        snprintf(a, sizeof a, "%.*s", (int)at, name);
        text_at(f, cx, TOP + PLOT_H + 14, "middle", "", a);
        text_at(f, cx, TOP + PLOT_H + 27, "middle", "", name + at + (name[at] == ' '));
    } else {
        char rot[96];
        snprintf(rot, sizeof rot, " transform=\"rotate(-30 %.1f %.1f)\"", cx + 4,
                 TOP + PLOT_H + 14);
        text_at(f, cx + 4, TOP + PLOT_H + 14, "end", rot, name);
    }
}

void svg_bars(FILE *f, const svg_plot *p, const char *const *cats, int ncats,
              const svg_series *s, int ns)
{
    scale y = axis_scale(s, ns, 1, p->ymin, p->ymax, TOP + PLOT_H, TOP, 0);
    double slot = (W - RIGHT - LEFT) / (ncats > 0 ? ncats : 1), bw = slot * 0.8 / (ns ? ns : 1);
    double extra;
    int mode = label_mode(cats, ncats, slot, &extra);
    open_svg(f, p, s, ns, total_height(s, ns, extra));
    y_axis(f, p, &y);
    for (int c = 0; c < ncats; c++)
        category_label(f, LEFT + slot * (c + 0.5), cats[c], mode);
    x_label(f, p, extra);
    frame(f);
    for (int i = 0; i < ns; i++) {
        open_series(f, &s[i]);
        for (int k = 0; k < s[i].n && k < ncats; k++) {
            if (!isfinite(s[i].y[k]))
                continue;
            double x0 = LEFT + slot * (k + 0.1) + bw * i;
            double y0 = at(&y, fmax(y.lo, 0)), y1 = at(&y, s[i].y[k]);
            fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\">"
                       "<title>",
                    x0, fmin(y0, y1), bw - 1, fabs(y0 - y1), svg_colour(s[i].colour));
            html_escape(f, s[i].name);
            fprintf(f, ": %s %.4g</title></rect>\n", cats[k], s[i].y[k]);
        }
        fputs("</g>\n", f);
    }
    legend(f, s, ns, TOP + PLOT_H + BOTTOM + extra + 12);
    close_svg(f, p);
}

/* ---------------------------------------------------------- heat map */

/* Viridis at t in [0, 1], from five anchors. */
static void viridis(double t, int rgb[3])
{
    static const int a[5][3] = {
        {68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
    t = fmin(fmax(t, 0), 1) * 4;
    int i = t >= 4 ? 3 : (int)t;
    double u = t - i;
    for (int c = 0; c < 3; c++)
        rgb[c] = (int)lround(a[i][c] + u * (a[i + 1][c] - a[i][c]));
}

void svg_heat(FILE *f, const svg_plot *p, const char *const *rows, int nrows,
              const char *const *cols, int ncols, const double *v)
{
    double left = 60;
    for (int r = 0; r < nrows; r++)
        left = fmax(left, CHAR_W * (double)strlen(rows[r]) + 12);
    const double cell_h = 24, top = TOP + 4, bar_w = 14;
    const double cell_w = (W - RIGHT - left - 86) / ncols, h = top + cell_h * nrows + 46;
    fprintf(f, "<figure class=\"plot\"><svg class=\"plot\" "
               "viewBox=\"0 0 %.0f %.0f\" role=\"img\" data-plot=\"",
            W, h);
    html_escape(f, p->id);
    fprintf(f, "\" data-series=\"%d\" data-points=\"%d\">\n<title>", nrows, nrows * ncols);
    html_escape(f, p->title);
    fputs("</title>\n", f);
    text_at(f, W / 2, 18, "middle", " class=\"title\"", p->title);
    for (int r = 0; r < nrows; r++) {
        fputs("<g class=\"series\" data-name=\"", f);
        html_escape(f, rows[r]);
        fprintf(f, "\" data-points=\"%d\">\n", ncols);
        text_at(f, left - 6, top + cell_h * r + cell_h / 2 + 4, "end", "", rows[r]);
        for (int c = 0; c < ncols; c++) {
            double t = (v[r * ncols + c] - p->ymin) / (p->ymax - p->ymin);
            int rgb[3];
            viridis(t, rgb);
            double x = left + cell_w * c, y = top + cell_h * r;
            fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                       "fill=\"rgb(%d,%d,%d)\"/>\n",
                    x, y, cell_w - 1, cell_h - 1, rgb[0], rgb[1], rgb[2]);
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" style=\"fill:%s\">"
                       "%.1f</text>\n",
                    x + cell_w / 2, y + cell_h / 2 + 4, t > 0.6 ? "#000" : "#fff",
                    v[r * ncols + c]);
        }
        fputs("</g>\n", f);
    }
    for (int c = 0; c < ncols; c++)
        text_at(f, left + cell_w * (c + 0.5), top + cell_h * nrows + 16, "middle", "", cols[c]);
    text_at(f, left + cell_w * ncols / 2, top + cell_h * nrows + 36, "middle", "", p->xlabel);
    /* The colour bar, ymin at the bottom. */
    double bx = W - RIGHT - 72, bh = cell_h * nrows, lx = bx + bar_w + 40;
    for (int k = 0; k < 32; k++) {
        int rgb[3];
        viridis((k + 0.5) / 32, rgb);
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.2f\" "
                   "fill=\"rgb(%d,%d,%d)\"/>\n",
                bx, top + bh - bh * (k + 1) / 32, bar_w, bh / 32 + 0.3, rgb[0], rgb[1], rgb[2]);
    }
    char b[32];
    snprintf(b, sizeof b, "%g", p->ymax);
    text_at(f, bx + bar_w + 4, top + 10, "start", "", b);
    snprintf(b, sizeof b, "%g", p->ymin);
    text_at(f, bx + bar_w + 4, top + bh, "start", "", b);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 %.1f "
               "%.1f)\">",
            lx, top + bh / 2, lx, top + bh / 2);
    html_escape(f, p->ylabel);
    fputs("</text>\n", f);
    close_svg(f, p);
}
