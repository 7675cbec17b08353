#include "io/untrusted_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/check.h"

namespace sspan::io {
namespace fs = std::filesystem;

std::string read_regular_file(const fs::path& path, size_t max_bytes, std::string_view what) {
  const std::string src = path.string();
  // O_NONBLOCK: opening a FIFO returns at once instead of waiting for a writer; the
  // fstat below then refuses it. Regular files ignore the flag.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  SSPAN_CHECK(fd >= 0, "{}: cannot open {}: {}", src, what, std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  SSPAN_CHECK(::fstat(fd, &st) == 0, "{}: cannot stat {}: {}", src, what, std::strerror(errno));
  SSPAN_CHECK(S_ISREG(st.st_mode), "{}: the {} is not a regular file", src, what);
  SSPAN_CHECK(uint64_t(st.st_size) <= max_bytes, "{}: the {} is {} bytes, more than the limit of {}", src, what,
              uint64_t(st.st_size), max_bytes);
  std::string text(size_t(st.st_size), '\0');
  size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    SSPAN_CHECK(n >= 0, "{}: reading the {} failed: {}", src, what, std::strerror(errno));
    if (n == 0) break;  // shrank while we read: keep what is there
    got += size_t(n);
  }
  text.resize(got);
  return text;
}

namespace {

// `inner` lies in `outer` (both canonical): outer's components are a prefix of inner's.
bool is_within(const fs::path& inner, const fs::path& outer) {
  auto i = inner.begin();
  for (auto o = outer.begin(); o != outer.end(); ++o, ++i)
    if (i == inner.end() || *i != *o) return false;
  return true;
}

}  // namespace

void check_inside_model_dir(const fs::path& dir, const fs::path& file) {
  std::error_code ec;
  const fs::path root = fs::canonical(dir.empty() ? fs::path(".") : dir, ec);
  SSPAN_CHECK(!ec, "model directory '{}' cannot be resolved: {}", dir.string(), ec.message());
  const fs::path target = fs::canonical(file, ec);
  SSPAN_CHECK(!ec, "{}: cannot be resolved (a dangling link?): {}", file.string(), ec.message());
  if (is_within(target, root)) return;
  // A Hugging Face cache: <repo>/snapshots/<revision>/<file> -> ../../blobs/<hash>.
  if (root.parent_path().filename() == "snapshots") {
    const fs::path blobs = fs::canonical(root.parent_path().parent_path() / "blobs", ec);
    if (!ec && is_within(target, blobs)) return;
  }
  SSPAN_FAIL("{}: leads to {}, outside the model directory {} (a file of a model directory must resolve "
             "inside it, or inside the Hugging Face cache's blobs/ for a snapshot)",
             file.string(), target.string(), root.string());
}

}  // namespace sspan::io
