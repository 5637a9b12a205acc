/*
 * loss.h - losses on logits, with their gradients.
 *
 * Each takes n rows of c logits and integer labels, returns the mean loss
 * and, when dlogits is not NULL, writes d(mean loss)/d(logits). per_example
 * (may be NULL) receives each example's own loss.
 */
#ifndef CORE_LOSS_H
#define CORE_LOSS_H

#define CORE_CW_KAPPA 50.0f

/* Softmax cross-entropy, computed with the log-sum-exp shift. */
float core_loss_ce(const float *logits, const int *y, int n, int c, float *dlogits,
                   float *per_example);

/* Carlini-Wagner margin loss as in Madry et al.'s code:
 * -relu(z_y - max_{i != y} z_i + kappa). Maximising it pushes the true logit
 * below the best other one. */
float core_loss_cw(const float *logits, const int *y, int n, int c, float kappa,
                   float *dlogits, float *per_example);

/* Softmax of each row into p (may alias logits). */
void core_softmax(const float *logits, float *p, int n, int c);

/* Index of the largest logit of row i, and the count of rows equal to y. */
int core_argmax(const float *row, int c);
int core_count_correct(const float *logits, const int *y, int n, int c);

#endif
