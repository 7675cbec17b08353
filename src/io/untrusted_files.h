#pragma once
// Opening the files of a model directory, which we do not trust: a FIFO named
// config.json would block open() forever, a link to /dev/zero never ends, and a link
// may point anywhere on the machine.
#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

namespace sspan::io {

// The whole of `path`, which must be a regular file (links followed) of at most
// `max_bytes`. `what` names the file's role in errors ("model config").
std::string read_regular_file(const std::filesystem::path& path, size_t max_bytes, std::string_view what);

// The link rule for a file found in model directory `dir`: with every link followed it
// must lie inside `dir`, or, when `dir` is a Hugging Face cache snapshot
// (<repo>/snapshots/<revision>), inside that cache's <repo>/blobs, where the snapshot's
// links point. Throws naming the file and where it leads otherwise (or when it is a
// dangling link).
void check_inside_model_dir(const std::filesystem::path& dir, const std::filesystem::path& file);

}  // namespace sspan::io
