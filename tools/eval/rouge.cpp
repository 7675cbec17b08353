#include "eval/rouge.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <sstream>

namespace sspan::eval {
namespace {

double f1(double overlap, double ref_count, double pred_count) {
  if (overlap == 0 || ref_count == 0 || pred_count == 0) return 0;
  const double p = overlap / pred_count, r = overlap / ref_count;
  return 2 * p * r / (p + r);
}

double ngram_f1(const std::vector<std::string>& ref, const std::vector<std::string>& pred, size_t n) {
  auto grams = [n](const std::vector<std::string>& t) {
    std::map<std::vector<std::string>, int> g;
    for (size_t i = 0; i + n <= t.size(); ++i) ++g[std::vector<std::string>(t.begin() + long(i), t.begin() + long(i + n))];
    return g;
  };
  const auto gr = grams(ref), gp = grams(pred);
  double overlap = 0, nr = 0, np = 0;
  for (const auto& [k, c] : gr) {
    nr += c;
    if (auto it = gp.find(k); it != gp.end()) overlap += std::min(c, it->second);
  }
  for (const auto& [k, c] : gp) np += c;
  return f1(overlap, nr, np);
}

// LCS table of a and b; returns the LCS length and (optionally) the matched indices of a.
size_t lcs(const std::vector<std::string>& a, const std::vector<std::string>& b, std::vector<size_t>* hits_a) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1, 0));
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j)
      d[i][j] = a[i - 1] == b[j - 1] ? d[i - 1][j - 1] + 1 : std::max(d[i - 1][j], d[i][j - 1]);
  if (hits_a) {
    for (size_t i = a.size(), j = b.size(); i > 0 && j > 0;) {
      if (a[i - 1] == b[j - 1]) {
        hits_a->push_back(i - 1);
        --i, --j;
      } else if (d[i - 1][j] >= d[i][j - 1]) {
        --i;
      } else {
        --j;
      }
    }
  }
  return d[a.size()][b.size()];
}

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);)
    if (!rouge_tokens(l).empty()) out.push_back(l);
  return out;
}

// Summary-level LCS (ROUGE-Lsum): for each reference sentence, the union of its LCS hits
// against every predicted sentence; hits are counted without exceeding token counts.
double rouge_lsum(const std::string& reference, const std::string& prediction) {
  const auto ref_lines = lines(reference), pred_lines = lines(prediction);
  std::map<std::string, int> ref_count, pred_count;
  double nr = 0, np = 0;
  std::vector<std::vector<std::string>> rt, pt;
  for (const auto& l : ref_lines) {
    rt.push_back(rouge_tokens(l));
    for (const auto& t : rt.back()) ++ref_count[t], ++nr;
  }
  for (const auto& l : pred_lines) {
    pt.push_back(rouge_tokens(l));
    for (const auto& t : pt.back()) ++pred_count[t], ++np;
  }
  double hits = 0;
  for (const auto& r : rt) {
    std::set<size_t> uni;
    for (const auto& p : pt) {
      std::vector<size_t> h;
      lcs(r, p, &h);
      uni.insert(h.begin(), h.end());
    }
    for (size_t i : uni) {
      const std::string& tok = r[i];
      if (ref_count[tok] > 0 && pred_count[tok] > 0) {
        --ref_count[tok], --pred_count[tok];
        ++hits;
      }
    }
  }
  return f1(hits, nr, np);
}

}  // namespace

std::vector<std::string> rouge_tokens(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  for (unsigned char c : text) {
    if (std::isalnum(c)) {
      cur.push_back(char(std::tolower(c)));
    } else if (!cur.empty()) {
      out.push_back(cur);
      cur.clear();
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

RougeScores rouge(const std::string& reference, const std::string& prediction) {
  const auto r = rouge_tokens(reference), p = rouge_tokens(prediction);
  RougeScores s;
  s.rouge1 = ngram_f1(r, p, 1);
  s.rouge2 = ngram_f1(r, p, 2);
  s.rougeL = f1(double(lcs(r, p, nullptr)), double(r.size()), double(p.size()));
  s.rougeLsum = rouge_lsum(reference, prediction);
  return s;
}

}  // namespace sspan::eval
