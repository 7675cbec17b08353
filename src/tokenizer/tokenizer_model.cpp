#include "tokenizer/tokenizer_model.h"

#include "tokenizer/unicode.h"

namespace sspan {

std::string TokenizerModel::decode(const std::vector<int>& ids) const {
  std::string bytes;
  for (int id : ids) bytes += token_bytes(id);
  if (strips_leading_space() && !bytes.empty() && bytes.front() == ' ') bytes.erase(0, 1);
  return unicode::replace_invalid_utf8(std::move(bytes));
}

}  // namespace sspan
