//! Links a backend makes once per host (a VXLAN device, a tunnel) and recognises by their
//! IFLA_IFALIAS, which records the settings they were made with: the link dump does not give
//! tunnel settings back in a form the netlink wrapper reads, so a link whose alias differs from
//! what is wanted is deleted and made again rather than patched.

use crate::error::DriverError;
use crate::netlink::Netlink;

/// A link to have: its name, the alias recording its settings, and the alias prefix that marks
/// every link of its kind as weft's.
#[derive(Debug, Clone, Copy)]
pub struct OwnedLink<'a> {
    pub name: &'a str,
    pub alias: &'a str,
    pub prefix: &'a str,
}

impl OwnedLink<'_> {
    /// Makes the link exist with this alias: kept when it already has it, deleted and made
    /// again with `create` when it is weft's but was made with other settings, refused when it
    /// is someone else's. Returns its index, whether it was made now, and what changed. A link
    /// made here whose alias cannot be set is deleted again.
    pub fn ensure(
        &self,
        nl: &mut Netlink,
        hint: &str,
        create: impl FnOnce(&mut Netlink) -> Result<u32, DriverError>,
    ) -> Result<(u32, bool, Vec<String>), DriverError> {
        let mut changes = Vec::new();
        match nl.link_by_name(self.name)? {
            Some(link) if link.alias.as_deref() == Some(self.alias) => {
                return Ok((link.index, false, changes))
            }
            Some(link) if self.is_ours(link.alias.as_deref()) => {
                nl.del_link(link.index)?;
                changes.push(format!("deleted {} (made with other settings)", self.name));
            }
            Some(_) => {
                return Err(DriverError::Exists {
                    object: format!("interface {}", self.name),
                    hint: format!("it was not made by weft; remove it or {hint}"),
                })
            }
            None => {}
        }
        let index = create(nl)?;
        if let Err(e) = nl.set_alias(index, self.alias) {
            let _ = nl.del_link(index);
            return Err(e);
        }
        changes.push(format!("created {}", self.name));
        Ok((index, true, changes))
    }

    /// The link's index if it exists with this alias.
    pub fn find(&self, nl: &mut Netlink) -> Result<Option<u32>, DriverError> {
        Ok(nl
            .link_by_name(self.name)?
            .filter(|l| l.alias.as_deref() == Some(self.alias))
            .map(|l| l.index))
    }

    /// Deletes the link if it is weft's (whatever its settings); true when something went.
    pub fn remove(&self, nl: &mut Netlink) -> Result<bool, DriverError> {
        match nl.link_by_name(self.name)? {
            Some(link) if self.is_ours(link.alias.as_deref()) => {
                nl.del_link(link.index)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn is_ours(&self, alias: Option<&str>) -> bool {
        alias.is_some_and(|a| a.starts_with(self.prefix))
    }
}
