//! Fuzz target: the Docker plugin protocol's request bodies. The first byte picks the method;
//! the rest is the body, decoded by `docker::decode_body` (the decoder every handler uses) into
//! that method's request type, then through the option readers the handlers run before they
//! touch the engine (option maps, flags, driver, addresses, port bindings).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use weft_plugin_api::docker::wire::{
    AllocateNetworkRequest, CreateEndpointRequest, CreateNetworkRequest, EndpointRequest,
    JoinRequest, NetworkRequest, ProgramExternalConnectivityRequest, ReleaseAddressRequest,
    ReleasePoolRequest, RequestAddressRequest, RequestPoolRequest,
};
use weft_plugin_api::docker::{decode_body, options, Method};

fn read_options(opts: &Map<String, Value>) {
    if let Ok(generic) = options::string_map(opts.get(options::GENERIC)) {
        let _ = options::driver_of(&generic);
    }
    for key in [options::ENABLE_IPV6, options::INTERNAL] {
        let _ = options::flag(opts, key);
    }
    if let Ok(bindings) = options::port_bindings(opts) {
        let _ = options::port_specs(&bindings);
    }
    let _ = options::string_map(Some(&Value::Object(opts.clone())));
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let method = Method::ALL[usize::from(pick) % Method::ALL.len()];
    let _ = Method::from_path(&String::from_utf8_lossy(body));
    use Method as M;
    match method {
        M::CreateNetwork => {
            if let Ok(req) = decode_body::<CreateNetworkRequest>(method, body) {
                read_options(&req.options.unwrap_or_default());
                for data in req
                    .ipv4_data
                    .iter()
                    .flatten()
                    .chain(req.ipv6_data.iter().flatten())
                {
                    let _ = options::cidr("Pool", &data.pool);
                    if let Some(gw) = &data.gateway {
                        let _ = options::address("Gateway", gw);
                    }
                    let _ =
                        options::string_map(data.aux_addresses.clone().map(Value::Object).as_ref());
                }
            }
        }
        M::DeleteNetwork | M::FreeNetwork => {
            let _ = decode_body::<NetworkRequest>(method, body);
        }
        M::AllocateNetwork => {
            let _ = decode_body::<AllocateNetworkRequest>(method, body);
        }
        M::CreateEndpoint => {
            if let Ok(req) = decode_body::<CreateEndpointRequest>(method, body) {
                read_options(&req.options.unwrap_or_default());
                let iface = req.interface.unwrap_or_default();
                let _ = options::cidr("Interface.Address", &iface.address);
                let _ = options::cidr("Interface.AddressIPv6", &iface.address_ipv6);
            }
        }
        M::EndpointOperInfo | M::DeleteEndpoint | M::Leave | M::RevokeExternalConnectivity => {
            let _ = decode_body::<EndpointRequest>(method, body);
        }
        M::Join => {
            if let Ok(req) = decode_body::<JoinRequest>(method, body) {
                read_options(&req.options.unwrap_or_default());
            }
        }
        M::ProgramExternalConnectivity => {
            if let Ok(req) = decode_body::<ProgramExternalConnectivityRequest>(method, body) {
                read_options(&req.options.unwrap_or_default());
            }
        }
        M::RequestPool => {
            if let Ok(req) = decode_body::<RequestPoolRequest>(method, body) {
                let _ = options::string_map(req.options.map(Value::Object).as_ref());
                let _ = options::cidr("Pool", &req.pool);
                let _ = options::cidr("SubPool", &req.sub_pool);
            }
        }
        M::ReleasePool => {
            let _ = decode_body::<ReleasePoolRequest>(method, body);
        }
        M::RequestAddress => {
            if let Ok(req) = decode_body::<RequestAddressRequest>(method, body) {
                let _ = options::string_map(req.options.map(Value::Object).as_ref());
                let _ = options::address("Address", &req.address);
            }
        }
        M::ReleaseAddress => {
            if let Ok(req) = decode_body::<ReleaseAddressRequest>(method, body) {
                let _ = options::address("Address", &req.address);
            }
        }
        _ => {
            let _ = decode_body::<Value>(method, body);
        }
    }
});
