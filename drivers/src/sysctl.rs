//! Sysctls as `/proc/sys` writes (never the `sysctl` program). `/proc/sys/net` shows the network
//! namespace of the calling thread.
