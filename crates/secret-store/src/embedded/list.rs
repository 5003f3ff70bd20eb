//! Deleting, listing and scanning secret files.

use super::*;

impl Inner {
    pub(super) fn delete(&self, path: &SecretPath) -> Result<(), SecretStoreError> {
        let _writing = self.writes.lock();
        let name = file_name(path);
        let file = self.secrets.join(&name);
        match fs::remove_file(&file) {
            Ok(()) => sync_dir(&self.secrets)?,
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("cannot delete", &file, &e)),
        }
        self.names.lock().remove(&name);
        Ok(())
    }

    /// The paths of every secret file, learnt by opening each file once.
    pub(super) fn all_paths(&self) -> Result<Vec<String>, SecretStoreError> {
        let entries =
            fs::read_dir(&self.secrets).map_err(|e| io_err("cannot list", &self.secrets, &e))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_err("cannot list", &self.secrets, &e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if !is_secret_file_name(&name) {
                continue;
            }
            let known = self.names.lock().get(&name).cloned();
            let path = match known {
                Some(p) => p,
                None => {
                    // Deleted since read_dir: skip it.
                    let Some(record) = self.read_record(&name)? else {
                        continue;
                    };
                    let Some((p, _)) = record.parts() else {
                        continue;
                    };
                    let p = p.to_owned();
                    self.names.lock().insert(name, p.clone());
                    p
                }
            };
            out.push(path);
        }
        Ok(out)
    }

    pub(super) fn list(&self, folder: &SecretPath) -> Result<Vec<String>, SecretStoreError> {
        let prefix = format!("{}/", folder.as_str());
        let mut out: Vec<String> = self
            .all_paths()?
            .into_iter()
            .filter_map(|path| {
                let leaf = path.strip_prefix(&prefix)?;
                (!leaf.is_empty() && !leaf.contains('/')).then(|| leaf.to_owned())
            })
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    pub(super) fn scan(&self, folder: &SecretPath) -> Result<Vec<SecretPath>, SecretStoreError> {
        let prefix = format!("{}/", folder.as_str());
        let mut out = self
            .all_paths()?
            .into_iter()
            .filter(|p| p.starts_with(&prefix))
            .map(|p| SecretPath::from_stored(&p))
            .collect::<Result<Vec<_>, _>>()?;
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The file's modification time: when the current version was written.
    pub(super) fn written_at(
        &self,
        path: &SecretPath,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, SecretStoreError> {
        let file = self.secrets.join(file_name(path));
        match fs::metadata(&file) {
            Ok(m) => {
                let t = m
                    .modified()
                    .map_err(|e| io_err("cannot read the time of", &file, &e))?;
                Ok(Some(t.into()))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("cannot read the time of", &file, &e)),
        }
    }
}
