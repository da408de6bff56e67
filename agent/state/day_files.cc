#include "agent/state/day_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "agent/base/utc_time.h"

namespace wattprobe {
namespace {

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(Fd&& other) noexcept {
    std::swap(fd_, other.fd_);
    return *this;
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

Result<bool> prepare_day_folder(const std::filesystem::path& dir, std::string_view what) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return error_from_errno(ec.value(), dir.string(), "creating " + std::string(what));
  // An unnamed O_TMPFILE file vanishes on close; file systems without it fall back to access().
  Fd probe(::open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600));
  if (probe.get() < 0) {
    int err = errno;
    bool unsupported = err == EOPNOTSUPP || err == EISDIR || err == EINVAL;
    if (!unsupported || ::access(dir.c_str(), W_OK | X_OK) != 0) {
      return error_from_errno(unsupported ? errno : err, dir.string(),
                              "creating a file in " + std::string(what));
    }
  }
  return true;
}

bool is_day_file(std::string_view name, int64_t* day) {
  constexpr std::string_view kSuffix = ".jsonl";
  if (name.size() != 10 + kSuffix.size() || name.substr(10) != kSuffix) return false;
  auto midnight = parse_utc_date(name.substr(0, 10));
  if (!midnight) return false;
  *day = utc_day(*midnight);
  return true;
}

std::filesystem::path day_file_path(const std::filesystem::path& dir, int64_t ms) {
  return dir / (format_utc_date(ms) + ".jsonl");
}

std::vector<DayFile> list_day_files(const std::filesystem::path& dir) {
  std::vector<DayFile> out;
  std::error_code ec;
  std::filesystem::directory_iterator files(dir, ec);
  if (ec) return out;
  for (const auto& entry : files) {
    int64_t day = 0;
    if (!is_day_file(entry.path().filename().string(), &day)) continue;
    std::error_code size_ec;
    uint64_t size = entry.file_size(size_ec);
    if (size_ec) continue;
    out.push_back({entry.path(), day, size});
  }
  std::sort(out.begin(), out.end(),
            [](const DayFile& a, const DayFile& b) { return a.day < b.day; });
  return out;
}

AppendResult append_to_day_file(const std::filesystem::path& dir, const std::filesystem::path& path,
                                std::string_view bytes) {
  AppendResult result;
  struct stat st {};
  bool existed = ::stat(path.c_str(), &st) == 0;
  auto open_file = [&] {
    // O_NOFOLLOW: a link planted in the folder must not make the agent append to another file.
    return ::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
  };
  Fd fd(open_file());
  if (fd.get() < 0 && errno == ENOENT) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    fd = Fd(open_file());
  }
  if (fd.get() < 0) {
    result.error = "cannot open " + path.string() + ": " +
                   (errno == ELOOP ? std::string("it is a symbolic link, which is never followed")
                                   : std::string(std::strerror(errno)));
    return result;
  }
  if (existed && st.st_size > 0) {
    char last = '\n';
    if (::pread(fd.get(), &last, 1, st.st_size - 1) == 1 && last != '\n') {
      (void)!::write(fd.get(), "\n", 1);  // a failure shows in the write below
    }
  }
  while (result.written < bytes.size()) {
    ssize_t n = ::write(fd.get(), bytes.data() + result.written, bytes.size() - result.written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      result.error = "cannot write " + path.string() + ": " +
                     std::string(n < 0 ? std::strerror(errno) : "no space written");
      return result;
    }
    result.written += static_cast<std::size_t>(n);
  }
  if (::fsync(fd.get()) != 0) {
    result.error = "cannot fsync " + path.string() + ": " + std::strerror(errno);
    return result;
  }
  if (!existed) {
    Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (d.get() < 0 || ::fsync(d.get()) != 0) {
      result.error = "cannot fsync " + dir.string() + ": " + std::strerror(errno);
    }
  }
  return result;
}

}  // namespace wattprobe
