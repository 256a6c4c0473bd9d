//! Empty on purpose: the library target only lets `proxy-user` list this
//! crate as a build-dependency, so that cargo rebuilds the eBPF object when
//! its sources change (cargo has no artifact dependencies on stable yet).
#![no_std]
