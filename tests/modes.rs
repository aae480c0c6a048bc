//! The built-in network modes: `none`, `host` and `container:<netns>`.

mod support;

use support::{root_or_skip, World};

#[test]
fn none_host_and_container_modes_attach_list_and_detach() {
    if !root_or_skip("modes") {
        return;
    }
    let mut w = World::new();
    let (c1, c2) = (w.ns("c1"), w.ns("c2"));
    let (p1, p2) = (c1.path.display().to_string(), c2.path.display().to_string());
    c1.sh("ip link set lo down");

    let ls = w.weft_ok(&["network", "ls"]);
    assert!(ls.contains(" none ") && ls.contains(" host "), "{ls}");
    assert!(ls.contains("null") && !ls.contains("container"), "{ls}");

    // none: loopback only, and up.
    w.weft_ok(&["network", "connect", "none", "--netns", &p1]);
    let links = c1.sh("ip -o link show");
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.contains("lo:") && links.contains("UP"), "{links}");
    let inspect = w.weft_ok(&["network", "inspect", "none"]);
    assert!(inspect.contains(&p1), "{inspect}");

    // host: the host's own namespace, shown with the host's interfaces.
    w.weft_ok(&["network", "connect", "host"]);
    let inspect = w.weft_ok(&["network", "inspect", "host"]);
    assert!(
        inspect.contains("\"host_links\"") && inspect.contains("\"lo\""),
        "{inspect}"
    );
    let (code, err) = w.weft_err(&["network", "connect", "host", "--netns", &p2]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not the host's network namespace"), "{err}");

    // container:<netns>: joining c1's namespace.
    let target = format!("container:{p1}");
    w.weft_ok(&["network", "connect", &target]);
    let inspect = w.weft_ok(&["network", "inspect", "container"]);
    assert!(
        inspect.contains(&p1) && inspect.contains("\"present\": true"),
        "{inspect}"
    );
    let (code, err) = w.weft_err(&["network", "connect", &target, "--netns", &p2]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not the namespace of"), "{err}");

    // Built-ins cannot be removed or re-created, and take no addresses or ports.
    for args in [
        vec!["network", "rm", "none"],
        vec!["network", "create", "host"],
        vec!["network", "connect", "none", "--netns", &p2, "-p", "80:80"],
        vec![
            "network", "connect", "none", "--netns", &p2, "--ip", "10.1.1.1",
        ],
    ] {
        let (code, err) = w.weft_err(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
    }

    w.weft_ok(&["network", "disconnect", "none", "--netns", &p1]);
    w.weft_ok(&["network", "disconnect", "host"]);
    w.weft_ok(&["network", "disconnect", &target]);
    let inspect = w.weft_ok(&["network", "inspect", "none", "host", "container"]);
    assert!(!inspect.contains(&p1), "attachments left: {inspect}");
}

#[test]
fn container_mode_refuses_a_namespace_that_does_not_exist() {
    if !root_or_skip("container mode") {
        return;
    }
    let w = World::new();
    let before = w.snapshot();
    let (code, err) = w.weft_err(&["network", "connect", "container:/nonexistent/ns"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("/nonexistent/ns"), "{err}");
    assert_eq!(w.snapshot(), before);
}
