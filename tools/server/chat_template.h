#pragma once
// Chat prompts from a model's tokenizer_config.json "chat_template". The server does not
// run Jinja: it recognises the two common forms and renders them itself, token by token
// (BOS/EOS and ChatML's markers as ids where the vocabulary has them):
//   LLaMA-2:  <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {assistant} </s><s>[INST] ...
//   ChatML:   <|im_start|>{role}\n{content}<|im_end|>\n ... <|im_start|>assistant\n
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "sspan/tokenizer.h"

namespace sspan::server {

struct ChatMessage {
  std::string role;  // system, user or assistant
  std::string content;
};

class ChatTemplate {
 public:
  enum class Kind { Llama2, ChatML };

  // The template of `model_dir`, or nullopt with the reason in *why_not (no
  // tokenizer_config.json, no chat_template, or a form the server cannot render).
  static std::optional<ChatTemplate> load(const std::filesystem::path& model_dir, std::string* why_not);
  // From a template string (tests; load() uses it). ChatML marker ids: -1 when the
  // vocabulary lacks them (the markers are then encoded as text).
  static std::optional<ChatTemplate> from_string(const std::string& jinja, bool add_bos, int32_t im_start_id = -1,
                                                 int32_t im_end_id = -1);

  Kind kind() const { return kind_; }
  const char* name() const { return kind_ == Kind::Llama2 ? "llama-2" : "chatml"; }

  // The prompt ids that ask the model for the assistant's next message. Throws Error for
  // an empty conversation, an unknown role, roles that do not alternate (LLaMA-2) or a
  // conversation that does not end with the user.
  std::vector<int32_t> render(const std::vector<ChatMessage>& messages, const Tokenizer& tok, int32_t bos_id,
                              int32_t eos_id) const;
  // Text that ends the assistant's message besides EOS.
  std::vector<std::string> stop_strings() const;

 private:
  Kind kind_ = Kind::Llama2;
  bool add_bos_ = true;
  int32_t im_start_ = -1, im_end_ = -1;
};

}  // namespace sspan::server
