// What the kernel says this process's descriptors are: for a client to show
// what it held, and for a forked child to check that what it inherited from
// gRPC is no longer the parent's.
#pragma once

#include <map>
#include <string>

namespace emb {

// Every open descriptor below the soft RLIMIT_NOFILE: number -> what
// /proc/self/fd/N links to ("socket:[123]", "anon_inode:[eventpoll]",
// "/dev/null", ...).
std::map<int, std::string> OpenFds();

// Prints "<label> fd N -> TARGET flags=0xF" for each (the lister's format).
void PrintFds(const std::string& label);

// As OpenFds, with each target made as precise as the kernel allows: all
// eventfds share one inode, so theirs carries the eventfd's id as well.
std::map<int, std::string> FdIdentities();

// In a forked child, before it does anything else: checks that each
// descriptor of `parent` (FdIdentities() just before the fork, all of it
// gRPC's above 0, 1 and 2) no longer reaches the parent's object: it is
// closed, or another object, or an epoll set that watches nothing. Prints "<role> pid=N <tag>: K of K inherited
// descriptors dead" or counts a failure naming those still the parent's.
void CheckInheritedDead(const std::map<int, std::string>& parent, const std::string& tag);

}  // namespace emb
