//! CNI mode: the binary is a CNI plugin when `CNI_COMMAND` is set.
