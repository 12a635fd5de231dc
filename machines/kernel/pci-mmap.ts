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
 * The mm of the first linked VMA that has no PTE: the first loop of the
 * remap walk sketched in seed 003 (`vma_populated()` under
 * i_mmap_lock_read). Keys are scanned in sorted order, so the choice is
 * deterministic. null when every linked VMA is populated.
 */
export function firstUnpopulated<U extends string>(vmas: Vmas<U>): U | null {
  for (const u of (Object.keys(vmas) as U[]).sort()) {
    const v = vmas[u];
    if (v?.linked && !v.pte) return u;
  }
  return null;
}

/**
 * The mm of the last linked VMA that has no PTE, as seed 003's sketch finds
 * it: its first loop does not stop at the first unpopulated VMA but
 * overwrites cur_mm for each one. The i_mmap tree order of two VMAs over the
 * same page is modelled as the sorted order of their processes.
 */
export function lastUnpopulated<U extends string>(vmas: Vmas<U>): U | null {
  let last: U | null = null;
  for (const u of (Object.keys(vmas) as U[]).sort()) {
    const v = vmas[u];
    if (v?.linked && !v.pte) last = u;
  }
  return last;
}

/** remap_pfn_range() over one mm's linked VMAs (the second loop of the seed-003 walk). */
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
