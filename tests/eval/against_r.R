# Reference values for tests/eval/test_against_r.py, computed by R's own packages:
# pROC (DeLong AUC, CI and tests), psych (Cohen's kappa, ICC), vcd (the interval of
# weighted kappa) and epiR (exact intervals).
#
#   Rscript against_r.R DIR
#
# reads the CSV files the test wrote to DIR (roc_*.csv, kappa_*.csv, icc_*.csv,
# counts.csv) and writes DIR/results.csv: one "key,value" row per number, 17
# significant digits, NA where R says a value is undefined.
suppressPackageStartupMessages({
  library(pROC)
  library(psych)
  library(epiR)
  library(vcd)
})

dir <- commandArgs(trailingOnly = TRUE)[1]
out <- list()
put <- function(key, value) out[[key]] <<- if (length(value) == 1) value else NA
stem <- function(file) sub("\\.csv$", "", file)
inputs <- function(pattern) list.files(dir, pattern)

# pROC: higher score = malignant (direction "<", controls 0, cases 1).
for (file in inputs("^roc_.*\\.csv$")) {
  name <- stem(file)
  d <- read.csv(file.path(dir, file))
  r1 <- roc(d$y, d$s1, direction = "<", levels = c(0, 1), quiet = TRUE)
  r2 <- roc(d$y, d$s2, direction = "<", levels = c(0, 1), quiet = TRUE)
  ci <- as.numeric(ci.auc(r1, method = "delong"))  # all three NA with one case of a class
  put(paste0(name, ".auc"), as.numeric(auc(r1)))
  put(paste0(name, ".ci_low"), ci[1])
  put(paste0(name, ".ci_high"), ci[3])
  # roc.test stops (instead of NA) when a class has a single case: that is NA too.
  test <- function(paired, what) tryCatch(
    suppressWarnings(roc.test(r1, r2, method = "delong", paired = paired)[[what]]),
    error = function(e) NA)
  put(paste0(name, ".paired_p"), test(TRUE, "p.value"))
  # The unpaired p is a t test with Welch df in pROC (normal in sonorisk): compare D.
  put(paste0(name, ".unpaired_statistic"), test(FALSE, "statistic"))
}

# psych: cohen.kappa takes disagreement weights (its default: squared distance) and
# turns them into agreement weights 1 - w / max(w): |i - j| gives linear weights.
# Its variance of *weighted* kappa takes the margins the wrong way round (it is 0 or
# negative on some tables), so that interval comes from vcd::Kappa (Fleiss, Cohen &
# Everitt 1969), whose weights "Equal-Spacing" and "Fleiss-Cohen" are linear and
# quadratic; psych gives the unweighted interval and both estimates.
for (file in inputs("^kappa_.*\\.csv$")) {
  name <- stem(file)
  d <- read.csv(file.path(dir, file))
  levels <- seq_len(d$k[1])
  for (power in c(1, 2)) {
    weights <- if (power == 1) "linear" else "quadratic"
    w <- abs(outer(levels, levels, "-"))^power
    # it warns when it clips an interval to [-1, 1], as sonorisk does
    k <- suppressWarnings(cohen.kappa(cbind(d$a, d$b), w = w, levels = levels))
    put(paste0(name, ".unweighted.estimate"), k$confid["unweighted kappa", "estimate"])
    put(paste0(name, ".unweighted.ci_low"), k$confid["unweighted kappa", "lower"])
    put(paste0(name, ".unweighted.ci_high"), k$confid["unweighted kappa", "upper"])
    put(paste0(name, ".", weights, ".estimate"), k$weighted.kappa)
    table <- table(factor(d$a, levels = levels), factor(d$b, levels = levels))
    kv <- Kappa(table, weights = if (power == 1) "Equal-Spacing" else "Fleiss-Cohen")
    ci <- confint(kv, level = 0.95)["Weighted", ]
    put(paste0(name, ".", weights, ".vcd_estimate"), kv$Weighted[["value"]])
    put(paste0(name, ".", weights, ".ci_low"), ci[[1]])
    put(paste0(name, ".", weights, ".ci_high"), ci[[2]])
  }
}

# psych: the six Shrout-Fleiss forms, F-based intervals (lmer = FALSE: the ANOVA way).
forms <- c(ICC1 = "ICC(1,1)", ICC2 = "ICC(2,1)", ICC3 = "ICC(3,1)",
           ICC1k = "ICC(1,k)", ICC2k = "ICC(2,k)", ICC3k = "ICC(3,k)")
for (file in inputs("^icc_.*\\.csv$")) {
  name <- stem(file)
  x <- as.matrix(read.csv(file.path(dir, file)))
  res <- suppressMessages(ICC(x, lmer = FALSE))$results
  for (i in seq_len(nrow(res))) {
    key <- paste0(name, ".", forms[[as.character(res$type[i])]])
    put(paste0(key, ".estimate"), res$ICC[i])
    put(paste0(key, ".ci_low"), res[i, "lower bound"])
    put(paste0(key, ".ci_high"), res[i, "upper bound"])
    put(paste0(key, ".F"), res$F[i])
    put(paste0(key, ".p"), res$p[i])
  }
}

# epiR: exact (Clopper-Pearson) intervals from the 2x2 table (tp, fp, fn, tn).
counts <- read.csv(file.path(dir, "counts.csv"))
for (i in seq_len(nrow(counts))) {
  r <- counts[i, ]
  e <- epi.tests(c(r$tp, r$fp, r$fn, r$tn), method = "exact", conf.level = 0.95)$detail
  for (stat in c("se", "sp", "diag.ac", "pv.pos", "pv.neg")) {
    row <- e[e$statistic == stat, ]
    key <- paste0(r$name, ".", stat)
    put(paste0(key, ".estimate"), row$est)
    put(paste0(key, ".ci_low"), row$lower)
    put(paste0(key, ".ci_high"), row$upper)
  }
}

values <- vapply(out, function(v) if (is.na(v)) "NA" else sprintf("%.17g", v), "")
write.csv(data.frame(key = names(out), value = values), file.path(dir, "results.csv"),
          row.names = FALSE)
