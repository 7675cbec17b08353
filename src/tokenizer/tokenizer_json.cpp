// Hugging Face tokenizer.json (the `tokenizers` library's format) for BPE models:
// byte-level (ByteLevel pre-tokenizer, optionally after a Split regex or Digits) and
// SentencePiece-style (Prepend/Replace normalizers or a Metaspace pre-tokenizer, byte
// fallback). Settings this reader does not implement are refused by name, never ignored.
#include "common/check.h"
#include "io/json_strict.h"
#include "tokenizer/bpe_model.h"

namespace sspan {
namespace {

using json = nlohmann::json;

constexpr std::string_view kMetaspace = "\xE2\x96\x81";

const json* field(const json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  const auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

std::string type_of(const json& obj, const std::string& path, const char* what) {
  const json* t = field(obj, "type");
  SSPAN_CHECK(t && t->is_string(), "{}: {} has no \"type\" string", path, what);
  return t->get<std::string>();
}

bool flag(const json& obj, const char* key, bool fallback, const std::string& path) {
  const json* v = field(obj, key);
  if (!v) return fallback;
  SSPAN_CHECK(v->is_boolean(), "{}: \"{}\" must be true or false", path, key);
  return v->get<bool>();
}

std::string text_of(const json& v, const std::string& path, const char* what) {
  SSPAN_CHECK(v.is_string(), "{}: {} must be a string", path, what);
  return v.get<std::string>();
}

void read_normalizer(const json* n, const std::string& path, BpeSpec& s) {
  if (!n) return;
  const std::string type = type_of(*n, path, "the normalizer");
  std::vector<const json*> parts;
  if (type == "Sequence") {
    const json* list = field(*n, "normalizers");
    SSPAN_CHECK(list && list->is_array(), "{}: normalizer Sequence has no \"normalizers\" list", path);
    for (const auto& p : *list) parts.push_back(&p);
  } else {
    parts.push_back(n);
  }
  for (const json* p : parts) {
    const std::string t = type_of(*p, path, "a normalizer");
    if (t == "Prepend") {
      const json* v = field(*p, "prepend");
      SSPAN_CHECK(v && text_of(*v, path, "Prepend.prepend") == kMetaspace,
                  "{}: only the normalizer Prepend(\"\u2581\") is supported", path);
      s.alphabet = BpeSpec::Alphabet::Metaspace;
      s.prepend = BpeSpec::Prepend::Always;
    } else if (t == "Replace") {
      const json* pat = field(*p, "pattern");
      const json* str = pat ? field(*pat, "String") : nullptr;
      const json* content = field(*p, "content");
      SSPAN_CHECK(str && content && text_of(*str, path, "Replace.pattern") == " " &&
                      text_of(*content, path, "Replace.content") == kMetaspace,
                  "{}: only the normalizer Replace(\" \" -> \"\u2581\") is supported", path);
      s.alphabet = BpeSpec::Alphabet::Metaspace;
    } else {
      SSPAN_FAIL("{}: normalizer {} is not supported (supported: none, or Prepend/Replace with \"\u2581\")", path, t);
    }
  }
}

bool read_byte_level(const json& p, const std::string& path, BpeSpec& s) {
  s.alphabet = BpeSpec::Alphabet::ByteLevel;
  s.add_prefix_space = flag(p, "add_prefix_space", true, path);
  SSPAN_CHECK(!s.add_prefix_space || s.splits.empty(),
              "{}: ByteLevel add_prefix_space after another pre-tokenizer is not supported", path);
  if (flag(p, "use_regex", true, path)) s.splits.push_back(SplitPattern::Gpt2);
  return true;
}

// Returns whether a ByteLevel pre-tokenizer is among them.
bool read_pre_tokenizer(const json* pt, const std::string& path, BpeSpec& s) {
  bool byte_level = false;
  if (!pt) return false;
  std::vector<const json*> parts;
  if (type_of(*pt, path, "the pre-tokenizer") == "Sequence") {
    const json* list = field(*pt, "pretokenizers");
    SSPAN_CHECK(list && list->is_array(), "{}: pre-tokenizer Sequence has no \"pretokenizers\" list", path);
    for (const auto& p : *list) parts.push_back(&p);
  } else {
    parts.push_back(pt);
  }
  for (const json* p : parts) {
    const std::string t = type_of(*p, path, "a pre-tokenizer");
    if (t == "ByteLevel") {
      byte_level = read_byte_level(*p, path, s);
    } else if (t == "Split") {
      const json* pat = field(*p, "pattern");
      const json* re = pat ? field(*pat, "Regex") : nullptr;
      SSPAN_CHECK(re, "{}: Split pre-tokenizer without a \"Regex\" pattern is not supported", path);
      const std::string regex = text_of(*re, path, "Split.pattern.Regex");
      SplitPattern sp;
      SSPAN_CHECK(split_pattern_from_regex(regex, &sp),
                  "{}: Split regex '{}' is not supported (supported: the GPT-2, LLaMA 3 and Qwen2 patterns)", path,
                  regex);
      const json* behavior = field(*p, "behavior");
      SSPAN_CHECK(behavior && text_of(*behavior, path, "Split.behavior") == "Isolated" && !flag(*p, "invert", false, path),
                  "{}: only Split with behavior Isolated and invert false is supported", path);
      s.splits.push_back(sp);
    } else if (t == "Digits") {
      SSPAN_CHECK(flag(*p, "individual_digits", false, path),
                  "{}: Digits pre-tokenizer without individual_digits is not supported", path);
      s.splits.push_back(SplitPattern::Digits);
    } else if (t == "Metaspace") {
      const json* rep = field(*p, "replacement");
      SSPAN_CHECK(!rep || text_of(*rep, path, "Metaspace.replacement") == kMetaspace,
                  "{}: Metaspace replacement other than \"\u2581\" is not supported", path);
      s.alphabet = BpeSpec::Alphabet::Metaspace;
      std::string scheme = flag(*p, "add_prefix_space", true, path) ? "always" : "never";
      if (const json* ps = field(*p, "prepend_scheme")) scheme = text_of(*ps, path, "Metaspace.prepend_scheme");
      SSPAN_CHECK(scheme == "always" || scheme == "first" || scheme == "never",
                  "{}: Metaspace prepend_scheme '{}' is not supported", path, scheme);
      s.prepend = scheme == "always" ? BpeSpec::Prepend::Always
                  : scheme == "first" ? BpeSpec::Prepend::First
                                      : BpeSpec::Prepend::Never;
      s.split_on_space = flag(*p, "split", true, path);
    } else {
      SSPAN_FAIL("{}: pre-tokenizer {} is not supported (supported: ByteLevel, Split, Digits, Metaspace)", path, t);
    }
  }
  return byte_level;
}

// The token a tokenizer_config.json entry names ("<s>" or {"content": "<s>", ...}).
std::string special_name(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (const json* c = field(v, "content"); c && c->is_string()) return c->get<std::string>();
  return {};
}

}  // namespace

BpeSpec read_tokenizer_json(const std::string& text, const std::string& path, const std::string& config_text) {
  const json j = io::parse_json_strict(text, path);
  SSPAN_CHECK(j.is_object(), "{}: not a JSON object", path);
  BpeSpec s;
  s.source = path;
  const json* model = field(j, "model");
  SSPAN_CHECK(model && model->is_object(),
              "{}: JSON without a \"model\" object, so not a Hugging Face tokenizer.json (supported tokenizers: a "
              "SentencePiece or tiktoken tokenizer.model, a tokenizer.json or a GGUF model file)",
              path);
  const std::string model_type = field(*model, "type") ? text_of(*field(*model, "type"), path, "model.type") : "BPE";
  SSPAN_CHECK(model_type == "BPE", "{}: model type {} is not supported (tokenizer.json with a BPE model only)", path,
              model_type);
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const json* v = field(*model, key);
    SSPAN_CHECK(!v || (v->is_string() && v->get<std::string>().empty()), "{}: model.{} is not supported", path, key);
  }
  if (const json* d = field(*model, "dropout"))
    SSPAN_CHECK(d->is_number() && d->get<double>() == 0.0, "{}: BPE dropout is not supported", path);
  s.byte_fallback = flag(*model, "byte_fallback", false, path);
  s.ignore_merges = flag(*model, "ignore_merges", false, path);
  s.fuse_unk = flag(*model, "fuse_unk", false, path);

  // Vocabulary: token -> id; ids may leave holes (filled by added tokens or unused).
  const json* vocab = field(*model, "vocab");
  SSPAN_CHECK(vocab && vocab->is_object() && !vocab->empty(), "{}: model.vocab is missing or empty", path);
  auto grow = [&](int64_t id, const std::string& what) {
    SSPAN_CHECK(id >= 0 && id < (int64_t(1) << 24), "{}: {} has id {} (outside [0, 2^24))", path, what, id);
    if (size_t(id) >= s.tokens.size()) s.tokens.resize(size_t(id) + 1);
  };
  std::vector<bool> seen;
  for (const auto& [tok, idv] : vocab->items()) {
    SSPAN_CHECK(idv.is_number_integer(), "{}: vocab entry '{}' has no integer id", path, tok);
    const int64_t id = idv.get<int64_t>();
    grow(id, "vocab entry '" + tok + "'");
    if (seen.size() < s.tokens.size()) seen.resize(s.tokens.size());
    SSPAN_CHECK(!seen[size_t(id)], "{}: vocab id {} is given to two tokens", path, id);
    seen[size_t(id)] = true;
    s.tokens[size_t(id)] = tok;
  }
  const json* merges = field(*model, "merges");
  SSPAN_CHECK(merges && merges->is_array(), "{}: model.merges is missing", path);
  s.merges.reserve(merges->size());
  for (const auto& m : *merges) {
    if (m.is_string()) {
      const std::string& line = m.get_ref<const std::string&>();
      const size_t sp = line.find(' ');
      SSPAN_CHECK(sp != std::string::npos && sp > 0 && sp + 1 < line.size() && line.find(' ', sp + 1) == std::string::npos,
                  "{}: merge '{}' is not two tokens separated by one space", path, line);
      s.merges.emplace_back(line.substr(0, sp), line.substr(sp + 1));
    } else {
      SSPAN_CHECK(m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string(),
                  "{}: a merge is neither \"a b\" nor [\"a\", \"b\"]", path);
      s.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    }
  }
  if (const json* unk = field(*model, "unk_token")) {
    const std::string name = text_of(*unk, path, "model.unk_token");
    const auto it = vocab->find(name);
    SSPAN_CHECK(it != vocab->end(), "{}: unk_token '{}' is not in the vocabulary", path, name);
    s.unk_id = it->get<int>();
  }

  if (const json* added = field(j, "added_tokens")) {
    SSPAN_CHECK(added->is_array(), "{}: \"added_tokens\" must be a list", path);
    for (const auto& a : *added) {
      const json* id = field(a, "id");
      const json* content = field(a, "content");
      SSPAN_CHECK(id && id->is_number_integer() && content && content->is_string(),
                  "{}: an added token lacks an integer \"id\" or a \"content\" string", path);
      BpeSpec::AddedToken t;
      t.content = content->get<std::string>();
      grow(id->get<int64_t>(), "added token '" + t.content + "'");
      t.id = id->get<int>();
      t.special = flag(a, "special", false, path);
      t.lstrip = flag(a, "lstrip", false, path);
      t.rstrip = flag(a, "rstrip", false, path);
      SSPAN_CHECK(!flag(a, "single_word", false, path), "{}: added token '{}': single_word is not supported", path,
                  t.content);
      s.added.push_back(std::move(t));
    }
  }
  s.types.assign(s.tokens.size(), BpeSpec::TokenType::Normal);
  for (size_t id = 0; id < s.tokens.size(); ++id)
    if (s.tokens[id].empty()) s.types[id] = BpeSpec::TokenType::Special;  // a hole: no text
  if (s.unk_id >= 0) s.types[size_t(s.unk_id)] = BpeSpec::TokenType::Unknown;

  read_normalizer(field(j, "normalizer"), path, s);
  const bool byte_level = read_pre_tokenizer(field(j, "pre_tokenizer"), path, s);
  if (s.alphabet == BpeSpec::Alphabet::ByteLevel) {
    // A byte-level vocabulary needs the ByteLevel pre-tokenizer; without any, the text
    // would be split into characters that are not in its alphabet.
    SSPAN_CHECK(byte_level, "{}: no ByteLevel pre-tokenizer and no \u2581 normalizer: not a tokenizer kind "
                "this reader supports", path);
    s.kind = "tokenizer.json byte-level BPE";
  } else {
    s.kind = "tokenizer.json SentencePiece-style BPE";
  }

  // BOS and EOS: tokenizer_config.json names them; the post-processor tells whether BOS
  // is added (LLaMA 3's TemplateProcessing starts with it).
  auto id_of = [&](const std::string& name) {
    if (name.empty()) return -1;
    for (const auto& a : s.added)
      if (a.content == name) return a.id;
    const auto it = vocab->find(name);
    return it == vocab->end() ? -1 : it->get<int>();
  };
  bool post_adds_bos = false;
  if (const json* pp = field(j, "post_processor")) {
    std::vector<const json*> procs;
    if (type_of(*pp, path, "the post-processor") == "Sequence") {
      if (const json* list = field(*pp, "processors"); list && list->is_array())
        for (const auto& p : *list) procs.push_back(&p);
    } else {
      procs.push_back(pp);
    }
    for (const json* p : procs) {
      if (type_of(*p, path, "a post-processor") != "TemplateProcessing") continue;
      const json* single = field(*p, "single");
      if (!single || !single->is_array() || single->empty()) continue;
      if (const json* st = field((*single)[0], "SpecialToken")) {
        if (const json* name = field(*st, "id"); name && name->is_string()) {
          s.bos_id = id_of(name->get<std::string>());
          post_adds_bos = s.bos_id >= 0;
        }
      }
    }
  }
  s.add_bos = post_adds_bos;
  if (!config_text.empty()) {
    const std::string cpath = path + " (tokenizer_config.json)";
    const json c = io::parse_json_strict(config_text, cpath);
    SSPAN_CHECK(c.is_object(), "{}: not a JSON object", cpath);
    if (const json* b = field(c, "bos_token")) s.bos_id = id_of(special_name(*b));
    if (const json* e = field(c, "eos_token")) s.eos_id = id_of(special_name(*e));
    s.add_bos = flag(c, "add_bos_token", post_adds_bos, cpath);
  }
  return s;
}

}  // namespace sspan
