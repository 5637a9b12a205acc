/*
 * report_pics.c - the pictures in `advctl report`: the PNG files that an
 * eval job drew for `advctl images` (daemon/extras.c), inlined as data:
 * URIs, each set with its index.tsv as a table of labels and predictions
 * (predictions that an attack changed are marked). Known files come in a
 * fixed order with their meaning as caption (clean, adversarial,
 * perturbation; a heat map, then its colour scale), others by name.
 */
#include "client/report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *kind, *title;
} picture_kind;

/* Every kind of `advctl images` (adv_images_kind), with its title. */
static const picture_kind kinds[] = {
    {"adversarial", "Adversarial examples"},
    {"corruptions", "One test image under every corruption"},
    {"saliency", "Saliency (gradient of the explained logit)"},
    {"smoothgrad", "SmoothGrad"},
    {"ig", "Integrated gradients"},
    {"guided", "Guided backpropagation"},
    {"gaussian-local", "Local Gaussian surrogate"},
    {"lime", "LIME"},
    {"units", "Units: filters, the test images that excite them, and inputs that maximise them"},
};

/* Files in the order they are shown, with what they are. */
static const struct {
    const char *file, *caption;
} known[] = {
    {"clean.png", "clean inputs"},
    {"adversarial.png", "adversarial inputs"},
    {"perturbation.png", "perturbation (grey 0, white +eps, black -eps)"},
    {"corruptions.png", "rows: corruptions; columns: severity 0 (clean) to 5"},
    {"filters.png", "filters"},
    {"top.png", "the test images that activate each unit most"},
};

static const char *caption_of(const char *file)
{
    static char buf[160];
    char layer[64];
    int unit;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strcmp(known[i].file, file))
            return known[i].caption;
    if (!strcmp(file, "legend.png"))
        return "colour scale: 0 (black) to the map's maximum (white)";
    if (sscanf(file, "maximise_%63[^_]_%d.png", layer, &unit) == 2) {
        snprintf(buf, sizeof buf, "the input that maximises %s unit %d", layer, unit);
        return buf;
    }
    return "input | heat map";
}

/* The index.tsv of a drawing job as a table: '#' lines become the
 * caption, the first other line the header. A row whose adversarial
 * prediction differs from the clean one is marked. */
static void index_table(FILE *f, const char *b64)
{
    uint8_t *text;
    size_t n;
    adv_error e;
    if (!b64 || adv_base64_decode(b64, strlen(b64), &text, &n, &e))
        return;
    char *s = realloc(text, n + 1);
    if (!s) {
        free(text);
        return;
    }
    s[n] = '\0';
    int row = 0, clean_col = -1, adv_col = -1, captioned = 0;
    /* Short indexes open, long ones (a unit's top images) folded. */
    size_t lines = 0;
    for (const char *p = s; *p; p++)
        lines += *p == '\n';
    fprintf(f, "<details%s><summary>index: labels and predictions</summary>\n<table>\n",
            lines <= 20 ? " open" : "");
    for (char *save = NULL, *line = strtok_r(s, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') {
            if (!row && !captioned++) {   /* a caption must come first */
                fputs("<caption>", f);
                html_escape(f, line + 1 + (line[1] == ' '));
                fputs("</caption>\n", f);
            }
            continue;
        }
        char *cells[16];
        int nc = 0;
        for (char *save2 = NULL, *c = strtok_r(line, "\t", &save2); c && nc < 16;
             c = strtok_r(NULL, "\t", &save2))
            cells[nc++] = c;
        int flip = row && clean_col >= 0 && adv_col >= 0 && clean_col < nc && adv_col < nc &&
                   strcmp(cells[clean_col], cells[adv_col]);
        fputs(flip ? "<tr class=\"flip\">" : "<tr>", f);
        for (int k = 0; k < nc; k++) {
            if (!row) {
                clean_col = strcmp(cells[k], "clean_pred") ? clean_col : k;
                adv_col = strcmp(cells[k], "adversarial_pred") ? adv_col : k;
            }
            fputs(row ? "<td>" : "<th>", f);
            html_escape(f, cells[k]);
            fputs(row ? "</td>" : "</th>", f);
        }
        fputs("</tr>\n", f);
        row++;
    }
    fputs("</table>\n</details>\n", f);
    free(s);
}

static void picture(FILE *f, const char *name, const json_t *b64)
{
    const char *cap = caption_of(name);
    fputs("<figure>", f);
    if (html_png(f, json_string_value(b64), cap))
        fputs("(missing or not a PNG file)", f);
    fputs("<figcaption>", f);
    html_escape(f, cap);
    fputs("</figcaption></figure>\n", f);
}

static int is_png(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && !strcmp(name + n - 4, ".png");
}

/* The known files first, in their order, then the other PNG files by
 * name, the colour scale last. */
static void pictures_of(FILE *f, const json_t *files)
{
    const char *name;
    const json_t *v;
    fputs("<div class=\"pics\">\n", f);
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if ((v = json_object_get(files, known[i].file)))
            picture(f, known[i].file, v);
    json_object_foreach((json_t *)files, name, v) {
        int listed = !strcmp(name, "legend.png");
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            listed |= !strcmp(name, known[i].file);
        if (!listed && is_png(name))
            picture(f, name, v);
    }
    if ((v = json_object_get(files, "legend.png")))
        picture(f, "legend.png", v);
    fputs("</div>\n", f);
}

/* Job i's pictures of kind k; 0 when it has none. */
static int one_job(FILE *f, const report *r, int i, const picture_kind *k)
{
    const json_t *p = json_object_get(r->job[i].pictures, k->kind);
    if (!p)
        return 0;
    fputs("<h3>", f);
    html_escape(f, k->title);
    if (r->n > 1) {
        fputs(", ", f);
        html_escape(f, rep_job_name(r, i));
    }
    fputs("</h3>\n", f);
    pictures_of(f, json_object_get(p, "files"));
    fprintf(f, "<p class=\"meta\">Drawn by eval job %lld.</p>\n",
            (long long)ctl_number(p, "job"));
    index_table(f, json_string_value(json_object_get(json_object_get(p, "files"), "index.tsv")));
    return 1;
}

/* The pictures of the kinds from..to-1 of every job, and one line per job
 * saying how to draw the kinds it lacks. */
static void pictures(FILE *f, const report *r, size_t from, size_t to)
{
    for (int i = 0; i < r->n; i++) {
        char missing[256] = "", what[512];
        const char *first = NULL;
        for (size_t k = from; k < to; k++)
            if (!one_job(f, r, i, &kinds[k])) {
                if (first)
                    snprintf(missing + strlen(missing), sizeof missing - strlen(missing),
                             "%s%s", *missing ? ", " : "", kinds[k].kind);
                else
                    first = kinds[k].kind;
            }
        if (!first)
            continue;
        snprintf(what, sizeof what, "No %s pictures of %s yet%s%s%s.", first,
                 rep_job_name(r, i), *missing ? " (nor " : "", missing, *missing ? ")" : "");
        rep_todo(f, what, "advctl images %lld --%s -n 16 -o pictures/", (long long)r->job[i].id,
                 first);
    }
}

#define KIND_ADVERSARIAL 0
#define KIND_CORRUPTIONS 1
#define KIND_EXPLAINED 2    /* the rest: maps and units */
#define NKINDS (sizeof kinds / sizeof kinds[0])

void rep_adversarial(FILE *f, const report *r)
{
    fputs("<h2 id=\"examples\">Adversarial examples</h2>\n"
          "<p>The first test images, the attack's versions of them and the difference; "
          "rows of the table in bold are the examples whose prediction the attack "
          "changed.</p>\n",
          f);
    pictures(f, r, KIND_ADVERSARIAL, KIND_ADVERSARIAL + 1);
}

void rep_corruption_pictures(FILE *f, const report *r)
{
    pictures(f, r, KIND_CORRUPTIONS, KIND_CORRUPTIONS + 1);
}

void rep_explanation_pictures(FILE *f, const report *r)
{
    pictures(f, r, KIND_EXPLAINED, NKINDS);
}
