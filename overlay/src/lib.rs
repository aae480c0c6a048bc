//! VXLAN backend (flannel-style L3 VXLAN): one VXLAN device per cluster network, static neighbour and FDB entries per peer.
