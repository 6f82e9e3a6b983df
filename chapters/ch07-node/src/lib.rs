//! Chapter 7: a Kubernetes node. The kubelet's half of the story: Pod
//! manifests in, CRI calls out, to containerd, whose shim runs chapter 6's
//! runtime (or runc) for each pod's sandbox and containers.
//!
//! - [`cri`]: the CRI client (gRPC over containerd's unix socket).
//! - [`pod`]: Pod manifests (a typed subset of Kubernetes' Pod) and their
//!   CRI configs.
//! - [`kubelet`]: the reconcile loop of static pods.

pub mod cri;
pub mod kubelet;
pub mod pod;
