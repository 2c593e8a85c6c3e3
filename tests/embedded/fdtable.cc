// The kernel's view of this process's descriptors, from /proc/self.

#include "fdtable.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "client.h"

namespace emb {

std::map<int, std::string> OpenFds() {
  std::map<int, std::string> fds;
  // The process cannot open a descriptor at or above its soft limit: one
  // there belongs to a tool running it (valgrind keeps its own there, and
  // lowers the limit the process sees), not to the program or its gRPC.
  struct rlimit lim = {};
  const long limit = getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY
                         ? static_cast<long>(lim.rlim_cur)
                         : LONG_MAX;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return fds;
  while (struct dirent* e = readdir(dir)) {
    char* end;
    long fd = std::strtol(e->d_name, &end, 10);
    if (*end != '\0' || end == e->d_name || fd == dirfd(dir) || fd >= limit) continue;
    char path[64], target[PATH_MAX];
    std::snprintf(path, sizeof path, "/proc/self/fd/%ld", fd);
    ssize_t n = readlink(path, target, sizeof target - 1);
    fds[static_cast<int>(fd)] = n > 0 ? std::string(target, static_cast<size_t>(n)) : "?";
  }
  closedir(dir);
  return fds;
}

void PrintFds(const std::string& label) {
  for (const auto& [fd, target] : OpenFds())
    std::printf("%s fd %d -> %s flags=0x%x\n", label.c_str(), fd, target.c_str(), fcntl(fd, F_GETFD));
}

namespace {

std::string FdInfo(int fd) { return fc::ReadFile("/proc/self/fdinfo/" + std::to_string(fd)); }

// An epoll set's fdinfo has one "tfd:" line per descriptor it watches.
bool EpollWatchesNothing(int fd) {
  std::string info = FdInfo(fd);
  return !info.empty() && info.find("tfd:") == std::string::npos;
}

}  // namespace

std::map<int, std::string> FdIdentities() {
  std::map<int, std::string> fds = OpenFds();
  for (auto& [fd, target] : fds) {
    if (target != "anon_inode:[eventfd]") continue;
    std::string info = FdInfo(fd);
    size_t at = info.find("eventfd-id:");
    if (at != std::string::npos)
      target += " id " + std::to_string(std::strtol(info.c_str() + at + 11, nullptr, 10));
  }
  return fds;
}

void CheckInheritedDead(const std::map<int, std::string>& parent, const std::string& tag) {
  const std::map<int, std::string> now = FdIdentities();
  int checked = 0;
  std::string alive;
  for (const auto& [fd, was] : parent) {
    if (fd <= 2) continue;
    checked++;
    auto it = now.find(fd);
    // Closed, or another object; an epoll set that watches nothing cannot
    // deliver the parent's events, whichever set it is.
    if (it == now.end() || it->second != was) continue;
    if (was == "anon_inode:[eventpoll]" && EpollWatchesNothing(fd)) continue;
    alive += " " + std::to_string(fd) + " (" + was + ")";
  }
  const std::string line = fc::Role() + " pid=" + std::to_string(getpid()) + " " + tag + ": ";
  if (alive.empty())
    std::printf("%s%d of %d inherited descriptors dead\n", line.c_str(), checked, checked);
  else
    fc::Fail(tag + ": still the parent's:" + alive + " (of " + std::to_string(checked) + ")");
}

}  // namespace emb
