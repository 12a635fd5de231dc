/**
 * vfio-pci BAR mappings as model state: one VMA per process over one page of
 * one BAR, the device's memory-decode state, and the two page-table
 * operations the protocols are built from (zap through the file's i_mmap
 * tree, populate one mm's VMAs). Pure functions over plain data, used by
 * machines/bar-mmap.ts.
 */

/**
 * A VMA mapping the BAR page. `linked`: in the device inode's i_mmap tree
 * (mm/vma.c:vma_link_file), so that unmap_mapping_range() can find it.
 * `pte`: the page table of its mm holds a PTE for the BAR pfn.
 */
export interface Vma {
  readonly linked: boolean;
  readonly pte: boolean;
}

export type Vmas<U extends string> = Readonly<Record<U, Vma | null>>;

/** What vfio_pci_core_mmap() leaves behind before mm links the VMA: neither linked nor populated. */
export const NEW_VMA: Vma = { linked: false, pte: false };

/** The parts of the device state that decide whether the BAR decodes. */
export interface DeviceDecode {
  /** The *virtual* PCI_COMMAND_MEMORY bit (vdev->vconfig), which is what the driver tests. */
  readonly cmdMemory: boolean;
  /** pdev->current_state >= PCI_D3hot. */
  readonly d3: boolean;
}

/**
 * drivers/vfio/pci/vfio_pci_config.c:__vfio_pci_memory_enabled():
 * current_state < D3hot && (no_command_memory || vconfig COMMAND & MEMORY).
 * no_command_memory (SR-IOV VFs) is not modelled: the bit always counts.
 */
export const memoryEnabled = (d: DeviceDecode): boolean => d.cmdMemory && !d.d3;

/**
 * mm/memory.c:unmap_mapping_range() on the device inode's mapping, as
 * VPCI:vfio_pci_zap_bars() calls it: under i_mmap_lock_read it walks the
 * i_mmap tree and clears the PTEs of every VMA it finds. A VMA that is not
 * linked yet is invisible to it and keeps its PTE (seed 003).
 */
export function zapLinked<U extends string>(vmas: Vmas<U>): Vmas<U> {
  const out = { ...vmas } as Record<U, Vma | null>;
  for (const u of Object.keys(vmas) as U[]) {
    const v = vmas[u];
    if (v?.linked && v.pte) out[u] = { ...v, pte: false };
  }
  return out;
}

/**
 * The mms of the linked VMAs that have no PTE, in the order the i_mmap walk
 * meets them (`vma_interval_tree_foreach`; the order of two VMAs over the
 * same page is modelled as the sorted order of their processes). Seed 003's
 * first loop mmgrab()s each of them and keeps the last in cur_mm.
 */
export function unpopulatedLinked<U extends string>(vmas: Vmas<U>): U[] {
  return (Object.keys(vmas) as U[]).sort().filter((u) => vmas[u]?.linked === true && !vmas[u]?.pte);
}

/** The mm of the first linked VMA without PTE: the project's walk stops there. null when there is none. */
export const firstUnpopulated = <U extends string>(vmas: Vmas<U>): U | null =>
  unpopulatedLinked(vmas)[0] ?? null;

/** The mm of the last linked VMA without PTE: seed 003's cur_mm, overwritten for each one. */
export const lastUnpopulated = <U extends string>(vmas: Vmas<U>): U | null =>
  unpopulatedLinked(vmas).at(-1) ?? null;

/**
 * Seed 003's second loop: `if (vma->vm_mm == mm) vfio_remap_vma(vma)` for every
 * linked VMA of the mm, populated or not. remap_pfn_range() on a range that
 * has a PTE hits BUG_ON(!pte_none(ptep_get(pte))) in mm/memory.c:remap_pte_range:
 * 'BUG'. An unlinked (unmapped) VMA is not in the tree and is not visited.
 */
export function remapLinked<U extends string>(vmas: Vmas<U>, mm: U): Vmas<U> | 'BUG' {
  const v = vmas[mm];
  if (!v?.linked) return vmas;
  return v.pte ? 'BUG' : { ...vmas, [mm]: { ...v, pte: true } };
}

/**
 * The project's second loop: remap_pfn_range() only the linked VMAs of the
 * mm that vma_populated() finds without a PTE. The test is stable: the walk
 * holds the mm's mmap_lock for write, which every populate of that mm needs
 * (a fault for read, mmap for write), and a zap only clears.
 */
export function populateLinked<U extends string>(vmas: Vmas<U>, mm: U): Vmas<U> {
  const v = vmas[mm];
  if (!v?.linked || v.pte) return vmas;
  return { ...vmas, [mm]: { ...v, pte: true } };
}

/** Set the PTE of one process's VMA (a fault's vmf_insert_pfn, or a populate in the mmap path). */
export function setPte<U extends string>(vmas: Vmas<U>, mm: U, pte: boolean): Vmas<U> {
  const v = vmas[mm];
  if (!v || v.pte === pte) return vmas;
  return { ...vmas, [mm]: { ...v, pte } };
}

/** Every VMA that maps the BAR, linked or not. */
export const mappedBy = <U extends string>(vmas: Vmas<U>): U[] =>
  (Object.keys(vmas) as U[]).filter((u) => vmas[u]?.pte === true).sort();

/** No device call is in progress on any thread: every enable or disable started (walk included) has returned. */
export const noCallInProgress = (call: Readonly<Record<string, string | null>>): boolean =>
  Object.values(call).every((c) => c === null);
