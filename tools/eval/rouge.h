#pragma once
// ROUGE-1, ROUGE-2, ROUGE-L and ROUGE-Lsum F-measures, as the reference `rouge-score`
// package computes them without stemming: lower-cased alphanumeric tokens; ROUGE-Lsum
// takes the union LCS over newline-separated summary sentences.
#include <string>
#include <vector>

namespace sspan::eval {

struct RougeScores {
  double rouge1 = 0, rouge2 = 0, rougeL = 0, rougeLsum = 0;  // F1 in [0, 1]
};

std::vector<std::string> rouge_tokens(const std::string& text);
RougeScores rouge(const std::string& reference, const std::string& prediction);

}  // namespace sspan::eval
