//! The built eBPF object against the names and layouts user space expects.

use proxy_common::names::{ALL_MAPS, PROG_STEER, PROG_XDP};

/// The built object has every map and program user space looks up by
/// name, with the key and value sizes of the shared types.
#[test]
fn object_matches_the_shared_names_and_layouts() {
    let obj = aya_obj::Object::parse(super::OBJECT).expect("parse the eBPF object");
    for name in ALL_MAPS {
        assert!(
            obj.maps.contains_key(name),
            "map {name} missing; maps: {:?}",
            obj.maps.keys().collect::<Vec<_>>()
        );
    }
    for name in [PROG_STEER, PROG_XDP] {
        assert!(obj.programs.contains_key(name), "program {name} missing");
    }
    let sizes = |name: &str| {
        let m = &obj.maps[name];
        (m.key_size() as usize, m.value_size() as usize)
    };
    use proxy_common::{steer::*, xdp::*};
    assert_eq!(sizes("LISTENERS"), (size_of::<ListenKey>(), size_of::<ListenTarget>()));
    assert_eq!(sizes("WORKER_SOCKETS").0, size_of::<WorkerKey>());
    assert_eq!(sizes("OWNERS"), (4, size_of::<Owner>()));
    assert_eq!(sizes("STEER_STATS").1, size_of::<SteerStats>());
    assert_eq!(sizes("PORT_STATS"), (size_of::<PortKey>(), size_of::<PortStats>()));
    assert_eq!(sizes("SYN_GUARD").1, size_of::<SynGuardConfig>());
}
