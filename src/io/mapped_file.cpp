#include "io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/check.h"

namespace sspan::io {

MappedFile::MappedFile(const std::filesystem::path& path) {
  const std::string src = path.string();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);  // a FIFO must not block the open
  SSPAN_CHECK(fd >= 0, "{}: cannot open: {}", src, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    SSPAN_FAIL("{}: not a regular file", src);
  }
  size_ = size_t(st.st_size);
  if (size_ > 0) {  // mmap refuses length 0
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    const int err = errno;
    ::close(fd);
    SSPAN_CHECK(p != MAP_FAILED, "{}: cannot map {} bytes: {}", src, size_, std::strerror(err));
    map_ = p;
  } else {
    ::close(fd);
  }
}

MappedFile::~MappedFile() {
  if (map_) ::munmap(map_, size_);
}

}  // namespace sspan::io
